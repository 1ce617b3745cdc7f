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
    os.fchmod(fd, _mode(path))  # mkstemp's 0600 would otherwise replace the file's mode
    with os.fdopen(fd, "wb" if binary else "w") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _mode(path: str) -> int:
  """The mode of the file at `path`, or for a new file what `open` would give it (0666 less
  the umask)."""
  try:
    return os.stat(path).st_mode & 0o7777
  except FileNotFoundError:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str, text: str) -> None:
  """`text` to `path` through `atomic_file`."""
  with atomic_file(path) as f:
    f.write(text)
