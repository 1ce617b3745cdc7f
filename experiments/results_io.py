"""Writing an experiment's results: `<stem>.json` (the numbers) and `<stem>.md` (the tables)."""

from __future__ import annotations

import json
import os


def write_json(stem: str, results: dict) -> None:
  os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
  with open(stem + ".json", "w") as f:
    json.dump(results, f, indent=1)


def write_markdown(stem: str, lines: list[str], echo: bool = True) -> None:
  """The lines as `<stem>.md` (printed too when echo)."""
  os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
  text = "\n".join(lines) + "\n"
  with open(stem + ".md", "w") as f:
    f.write(text)
  if echo:
    print(text, end="")
