r"""The kill -9 campaign: a training run killed with SIGKILL at random moments, resumed each time.

  python -m experiments.kill9 --kills=20 --workdir=/tmp/kill9 --output=results/kill9_campaign.md

Trains the tiny test config (`experiments/configs/test.py`: 2-level multiscale with augmented
training, so the level axis and the augmented state are covered) for `--steps` steps with a
checkpoint every 3 steps, once uninterrupted (the reference) and once killed `--kills` times:

* odd kills (the first, third, ...) during a checkpoint save: the parent polls the checkpoint
  directory and kills the child when orbax's temporary directory of its k-th save appears (k
  uniform in 1..4), after a random delay of 0-30 ms (so that kills land at different points of
  the save);
* even kills at a uniformly random moment of the rest of the run (start-up, compilation, a
  step, a save), drawn over the reference's run time.

Each child is a fresh process (`--child`) that resumes from the latest checkpoint, sharing a
persistent compilation cache with the others so that a restart costs seconds
(`$JAX_COMPILATION_CACHE_DIR` when set, as in the test suite, else WORKDIR/jax_cache). The
first killed launch compiles; the reference runs after it, from the cache, and its wall time is
the run time the random kills are drawn over. At the end the campaign checks, and the table
reports:

* the final TrainState (parameters, optimiser, objective and strategy state, EMA, step and data
  position) is bit-identical to the reference's;
* every checkpoint left is restorable, and the kept steps equal the reference's;
* metrics.jsonl has each train step exactly once, with the reference's values bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging

from alala_jax import runtime

_KILLS = flags.DEFINE_integer("kills", 20, "SIGKILLs to deliver.")
_STEPS = flags.DEFINE_integer("steps", 90, "Training steps of the run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
_WORKDIR = flags.DEFINE_string("workdir", "", "Campaign directory (default: a temp dir).")
_OUTPUT = flags.DEFINE_string("output", "", "Markdown report to write (also printed).")
_MODEL = flags.DEFINE_enum(
  "model",
  "test",
  ["test", "plain"],
  "'test': the test config as it is; 'plain': one level, no augmented training (traces in "
  "a third of the time; what the CI test uses).",
)
_CHILD = flags.DEFINE_bool("child", False, "Internal: train in this process.")
_RUN = flags.DEFINE_string("run", "", "Internal: the child's workdir.")

CHECKPOINT_EVERY = 3


def campaign_config(steps: int, model: str = "test"):
  from experiments.configs import test

  c = test.get_config()
  if model == "plain":
    c.objective.augmented.enabled = False
    c.objective.multiscale.n_levels = 1
  c.train.num_steps = steps
  c.train.checkpoint_every = CHECKPOINT_EVERY
  c.train.log_every = 1
  c.train.eval_every = 0
  c.train.max_to_keep = 3
  return c


def _env(cache_dir: str) -> dict[str, str]:
  env = dict(os.environ)
  env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  return env


def _launch(run: str, steps: int, model: str, cache_dir: str, log) -> subprocess.Popen:
  cmd = [sys.executable, "-m", "experiments.kill9", "--child", f"--run={run}"]
  cmd += [f"--steps={steps}", f"--model={model}"]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return subprocess.Popen(cmd, cwd=root, env=_env(cache_dir), stdout=log, stderr=log)


def _saving(ckpt_dir: str, since: float) -> bool:
  """Whether orbax is writing a checkpoint: a temporary step directory created or changed at or
  after `since` (one left behind by an earlier kill does not count) exists."""
  try:
    names = [n for n in os.listdir(ckpt_dir) if "tmp" in n]
    return any(os.stat(os.path.join(ckpt_dir, n)).st_mtime >= since for n in names)
  except FileNotFoundError:  # no directory yet, or orbax renamed it meanwhile
    return False


@dataclasses.dataclass
class Kill:
  mode: str  # 'random' | 'save'
  after_s: float  # since the child's launch
  during_save: bool  # a temporary checkpoint directory existed when the signal was sent
  latest_before: int | None  # latest finalised checkpoint step before the kill


def _latest_step(ckpt_dir: str) -> int | None:
  from alala_jax.train import loop  # imports jax: after runtime.setup()

  return max(loop._finalized_steps(ckpt_dir), default=None)


def run_campaign(
  kills: int,
  steps: int,
  seed: int,
  workdir: str,
  model: str = "test",
  log=print,
  save_delay_s: float = 0.03,
) -> dict:
  """Runs the reference and the killed run in `workdir`; returns the report dict. A kill
  aimed at a save waits uniform(0, `save_delay_s`) after the save's directory appears."""
  rng = random.Random(seed)
  cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(workdir, "jax_cache")
  ref, killed = os.path.join(workdir, "reference"), os.path.join(workdir, "killed")
  for d in (ref, killed):
    shutil.rmtree(d, ignore_errors=True)
  logf = open(os.path.join(workdir, "children.log"), "ab")
  run_seconds = None  # the reference's wall time; it runs before the first random kill

  def reference() -> float:
    t0 = time.time()
    if _launch(ref, steps, model, cache, logf).wait() != 0:
      raise RuntimeError(f"the reference run failed; see {logf.name}")
    seconds = time.time() - t0
    log(f"reference: {steps} steps in {seconds:.1f} s (after the first launch compiled)")
    return seconds

  ckpt_dir = os.path.join(killed, "checkpoints")
  history: list[Kill] = []
  launches, restarts, finished = 0, 0, False
  while not finished:
    if len(history) % 2 == 1 and len(history) < kills and run_seconds is None:
      run_seconds = reference()  # before the first random kill, which is drawn over it
    p = _launch(killed, steps, model, cache, logf)
    launches = len(history) + 1
    t_launch = time.time()
    if len(history) >= kills:  # the final, uninterrupted resume
      finished = p.wait() == 0
      if not finished:
        raise RuntimeError(f"the final resume failed; see {logf.name}")
      break
    mode = "save" if len(history) % 2 == 0 else "random"
    if mode == "random":  # uniform over the time the rest of the run takes
      remaining = (steps - (_latest_step(ckpt_dir) or 0)) / steps
      deadline = t_launch + rng.uniform(0.0, run_seconds * remaining)
      while time.time() < deadline and p.poll() is None:
        time.sleep(0.002)
    else:  # the k-th save of this launch, k in 1..4 (at most the saves left)
      left = (steps - (_latest_step(ckpt_dir) or 0)) // CHECKPOINT_EVERY
      target, seen, was = rng.randint(1, max(1, min(4, left))), 0, False
      while p.poll() is None and seen < target:
        now = _saving(ckpt_dir, t_launch)
        seen += now and not was
        was = now
        time.sleep(0.0005)
      time.sleep(rng.uniform(0.0, save_delay_s))
    if p.poll() is not None:  # finished before the kill: run it again from scratch
      if p.returncode != 0:
        raise RuntimeError(f"a resumed run failed (exit {p.returncode}); see {logf.name}")
      # the kills so far were verified by nothing: start the run and the count again
      log(f"the run finished before kill {len(history) + 1}; restarting it and the count")
      shutil.rmtree(killed)
      restarts += 1
      history = []
      continue
    latest, during = _latest_step(ckpt_dir), _saving(ckpt_dir, t_launch)
    p.send_signal(signal.SIGKILL)
    p.wait()
    history.append(Kill(mode, time.time() - t_launch, during, latest))
    log(
      f"kill {len(history):2d} ({mode}) after {history[-1].after_s:.2f} s: latest checkpoint "
      f"{latest}, {'during a save' if during else 'not saving'}"
    )
  if run_seconds is None:  # fewer than two kills: no random kill ran the reference yet
    reference()
  logf.close()
  return {
    "kills": history,
    "launches": launches,
    "restarts": restarts,
    **verify(ref, killed, steps, model),
  }


def verify(ref: str, killed: str, steps: int, model: str = "test") -> dict:
  """Bit-identity of the final states, restorability of every checkpoint, metrics rows."""
  import jax
  import numpy as np

  from alala_jax.train import loop

  config = campaign_config(steps, model)
  task = loop.prepare(config, killed)
  template = task.trainer.create_state(config.seed, task.example_batch(config.train.batch_size))
  out: dict = {}
  states, kept = {}, {}
  for name, wd in (("reference", ref), ("killed", killed)):
    mngr = loop.checkpoint_manager(wd, config.train.max_to_keep)
    kept[name] = sorted(mngr.all_steps())
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), template)
    import orbax.checkpoint as ocp

    restored = {s: mngr.restore(s, args=ocp.args.StandardRestore(abstract)) for s in kept[name]}
    mngr.close()
    states[name] = restored[max(kept[name])]
    out[f"{name}_restorable"] = len(restored)
  leaves = lambda s: [np.asarray(x) for x in jax.tree.leaves(jax.device_get(s))]
  a, b = leaves(states["reference"]), leaves(states["killed"])
  out["leaves"] = len(a)
  out["bit_identical"] = len(a) == len(b) and all(
    x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
    for x, y in zip(a, b)
  )
  out["kept_steps"] = kept["killed"]
  out["kept_steps_match"] = kept["killed"] == kept["reference"]
  out["final_step"] = int(states["killed"].step)
  leftovers = [n for n in os.listdir(os.path.join(killed, "checkpoints")) if "tmp" in n]
  out["leftover_tmp_dirs"] = len(leftovers)

  def train_rows(wd):
    with open(os.path.join(wd, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows if r["split"] == "train"]

  r_ref, r_killed = train_rows(ref), train_rows(killed)
  step_list = [r["step"] for r in r_killed]
  out["metric_rows"] = len(r_killed)
  out["metric_steps_ok"] = step_list == list(range(1, steps + 1))
  out["metric_values_identical"] = r_ref == r_killed
  return out


def format_report(res: dict, kills: int, steps: int, seed: int, model: str) -> str:
  h = res["kills"]
  during = sum(k.during_save for k in h)
  yes = lambda b: "yes" if b else "**no**"
  lines = [
    "# kill -9 campaign",
    "",
    f"`python -m experiments.kill9 --kills={kills} --steps={steps} --seed={seed} "
    f"--model={model}` (tiny test config, checkpoint every {CHECKPOINT_EVERY} steps, max_to_keep 3)",
    "",
    "| | |",
    "|---|---|",
    f"| SIGKILLs | {len(h)} ({sum(k.mode == 'random' for k in h)} at random moments, "
    f"{sum(k.mode == 'save' for k in h)} aimed at a save) |",
    f"| kills that landed during a checkpoint save | {during} |",
    f"| launches | {res['launches']} (the kills and the final resume of the verified run; "
    f"before it, {res['restarts']} runs finished before their next kill and were discarded "
    "with their kills) |",
    f"| final step | {res['final_step']} of {steps} |",
    f"| final TrainState bit-identical to the uninterrupted run ({res['leaves']} arrays) | "
    f"{yes(res['bit_identical'])} |",
    f"| checkpoints restorable (killed / reference) | {res['killed_restorable']} / "
    f"{res['reference_restorable']} |",
    f"| kept checkpoint steps equal the reference's | {yes(res['kept_steps_match'])} "
    f"({res['kept_steps']}) |",
    f"| temporary checkpoint directories left | {res['leftover_tmp_dirs']} |",
    f"| metrics.jsonl train rows: each step once | {yes(res['metric_steps_ok'])} "
    f"({res['metric_rows']} rows) |",
    f"| metrics.jsonl values equal the reference's | {yes(res['metric_values_identical'])} |",
    "",
    "| kill | mode | after (s) | latest checkpoint | during a save |",
    "|---|---|---|---|---|",
  ]
  for i, k in enumerate(h, 1):
    lines.append(
      f"| {i} | {k.mode} | {k.after_s:.2f} | {k.latest_before} | "
      f"{'yes' if k.during_save else 'no'} |"
    )
  return "\n".join(lines) + "\n"


def ok(res: dict) -> bool:
  return bool(
    res["bit_identical"]
    and res["kept_steps_match"]
    and res["metric_steps_ok"]
    and res["metric_values_identical"]
    and res["killed_restorable"] == len(res["kept_steps"])
    and res["leftover_tmp_dirs"] == 0
  )


def _child() -> None:
  from alala_jax.train import loop

  loop.train(campaign_config(_STEPS.value, _MODEL.value), _RUN.value, log=lambda *a: None)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if _CHILD.value:
    _child()
    return
  workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="kill9_")
  os.makedirs(workdir, exist_ok=True)
  res = run_campaign(_KILLS.value, _STEPS.value, _SEED.value, workdir, _MODEL.value)
  report = format_report(res, _KILLS.value, _STEPS.value, _SEED.value, _MODEL.value)
  print(report)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      f.write(report)
  if not ok(res):
    sys.exit(1)


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
