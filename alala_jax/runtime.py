"""Process set-up for fast JAX on CPU (DESIGN §5).

XLA's fresh temporary buffers cost page faults with glibc's default malloc thresholds; raising
M_MMAP_THRESHOLD and M_TRIM_THRESHOLD halved a GRU training step on this CPU. Call `setup()` at
the start of a program (the experiment mains do); it is a no-op where glibc is absent.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def setup() -> bool:
  """Raises glibc malloc's mmap/trim thresholds. Returns True if applied."""
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 31)
    return bool(ok)
  except (OSError, AttributeError):
    return False
