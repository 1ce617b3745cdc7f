"""Config overrides as one string: "model.hidden=128,optim.name=adam,model.latent_dims=32-16"
(for scripts that take several settings at once, where absl's --config.x=y takes one)."""

from __future__ import annotations


def parse_value(v: str):
  """int, float, bool (true/false), a '-'-separated int tuple, else the string."""
  if v.lower() in ("true", "false"):
    return v.lower() == "true"
  for cast in (int, float):
    try:
      return cast(v)
    except ValueError:
      pass
  if "-" in v and all(p.isdigit() for p in v.split("-")):
    return tuple(int(p) for p in v.split("-"))
  return v


def apply_overrides(c, spec: str) -> None:
  """Sets every comma-separated `a.b.c=value` of spec on the ConfigDict c."""
  for item in filter(None, spec.split(",")):
    key, _, value = item.partition("=")
    *path, leaf = key.strip().split(".")
    node = c
    for p in path:
      node = node[p]
    node[leaf] = parse_value(value.strip())
