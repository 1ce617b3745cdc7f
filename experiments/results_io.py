"""Writing an experiment's results: `<stem>.json` (the numbers) and `<stem>.md` (the tables)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile


def write_json(stem: str, results: dict) -> None:
  os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
  with open(stem + ".json", "w") as f:
    json.dump(results, f, indent=1)


def read_json(stem: str) -> dict | None:
  """`<stem>.json` as written by `write_json`, or None when there is none (a first run)."""
  if not os.path.exists(stem + ".json"):
    return None
  with open(stem + ".json") as f:
    return json.load(f)


def write_markdown(stem: str, lines: list[str], echo: bool = True) -> None:
  """The lines as `<stem>.md` (printed too when echo)."""
  os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
  text = "\n".join(lines) + "\n"
  with open(stem + ".md", "w") as f:
    f.write(text)
  if echo:
    print(text, end="")


def row_dir(root: str | None, name: str):
  """A context manager giving a table row's workdir: ROOT/NAME, made and kept (a rerun resumes
  or re-evaluates it), or a temporary directory when `root` is None."""
  if root:
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=True)
    return contextlib.nullcontext(path)
  return tempfile.TemporaryDirectory()
