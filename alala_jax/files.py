"""Files that a killed process never leaves half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_file(path: str, binary: bool = False) -> Iterator[IO]:
  """Opens a temporary file in `path`'s directory for writing; on leaving the block it is
  flushed, fsync'ed and `os.replace`d over `path`. Readers see the old file or the whole new
  one, never a torn one, even if the process is killed (SIGKILL) mid-write; on an exception
  the temporary file is removed and `path` is left as it was."""
  d = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=d)
  try:
    with os.fdopen(fd, "wb" if binary else "w") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_atomic(path: str, text: str) -> None:
  """`text` to `path` through `atomic_file`."""
  with atomic_file(path) as f:
    f.write(text)
