"""What a resumed run changed in its config, and whether the checkpoint still means the same run.

`train` resumes from ``workdir/checkpoints`` whenever it finds one. If the config given then is
not the one ``workdir/config.json`` recorded, the checkpoint's parameters, optimiser state and
data position would silently continue a different experiment (another β, another data file,
another seed): a wrong number, not an error. So before resuming, `check` compares the two:

* keys of `RESUMABLE` (how long the run lasts, how it logs, saves and is evaluated, on which
  devices) may change: each change is logged, because schedules follow ``train.num_steps``;
* any other changed value raises `ConfigChangedError`, naming every key with its recorded and
  its new value, unless ``train.allow_config_change`` is set (then they are logged too);
* a key the recorded config lacks (a setting added to the library after the run was trained)
  counts as the library's default (`alala_jax.config.base_config`), so setting it now is a
  change; keys without a default there, and keys the new config lacks, are not compared.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

CONFIG_FILE = "config.json"

# Prefixes of the keys a resumed run may change: they do not change what the checkpoint holds.
RESUMABLE = (
  "train.num_steps",
  "train.log_every",
  "train.eval_every",
  "train.eval_batches",
  "train.checkpoint_every",
  "train.max_to_keep",
  "train.mesh",
  "train.allow_config_change",
  "eval.",
)


class ConfigChangedError(ValueError):
  """The config of a resumed run differs from the one its checkpoints were trained with."""


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  """{'a.b.c': leaf} of nested dicts (the JSON form of a ConfigDict); an empty dict is a leaf."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict) and v:
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def changes(saved: dict, config) -> list[tuple[str, Any, Any]]:
  """(key, recorded value, new value) of every key whose value differs; a key `saved` lacks
  has the library default's value there (module doc)."""
  from alala_jax import config as config_lib

  new = flatten(json.loads(config.to_json_best_effort()))
  old = flatten(saved)
  defaults = flatten(json.loads(config_lib.base_config().to_json_best_effort()))
  out = []
  for k in sorted(new):
    if k in old:
      before = old[k]
    elif k in defaults:
      before = defaults[k]  # absent when the run was trained: it ran with the default
    else:
      continue
    if before != new[k]:
      out.append((k, before, new[k]))
  return out


def resumable(key: str) -> bool:
  return any(key == p or (p.endswith(".") and key.startswith(p)) for p in RESUMABLE)


def check(workdir: str, config, log: Callable[[str], None] = print) -> None:
  """Raises `ConfigChangedError` if `config` changes a key of ``workdir/config.json`` outside
  `RESUMABLE` (and ``train.allow_config_change`` is not set); logs every change it allows.
  Call it only when the workdir holds a checkpoint that will be resumed."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError as e:
      raise ConfigChangedError(
        f"{path}: line {e.lineno}: not valid JSON ({e.msg}); cannot tell whether the "
        "checkpoints beside it were trained with this config. Move it away to resume anyway."
      ) from e
  diffs = changes(saved, config)
  allow = bool(config.train.get("allow_config_change", False))
  refused = [d for d in diffs if not resumable(d[0])]
  if refused and not allow:
    lines = "\n".join(f"  {k}: {old!r} -> {new!r}" for k, old, new in refused)
    raise ConfigChangedError(
      f"{workdir} holds checkpoints trained with another config ({path}); resuming would "
      f"continue that run under these changed settings:\n{lines}\n"
      "Use a new --workdir, or set train.allow_config_change=True to resume anyway."
    )
  for k, old, new in diffs:
    log(f"resuming with a changed config: {k}: {old!r} -> {new!r}")
