"""Process set-up for fast JAX on CPU (DESIGN §5).

XLA:CPU allocates each step's temporary buffers afresh; with glibc's defaults a large block is
mmap'ed and unmapped again, so each step page-faults its temporary space back in.

* 'thresholds' (the default): raise M_MMAP_THRESHOLD and M_TRIM_THRESHOLD. This halved a
  single GRU-scan step on this CPU (DESIGN §5). It only affects the main thread's arena. For the
  full Address step, whose 182 MB of temporaries are allocated from XLA's own threads, it left
  the page faults unchanged: 44,591 per step, against 44,584 with glibc's defaults.
* 'tuned': the thresholds plus a single arena (M_ARENA_MAX = 1), so that those blocks also
  come from the main heap. This cut the faults to 4,455 per step, yet the step was slower in
  the same comparison (489 ms against 380 ms and 333 ms for 'default'). The likely cause is
  that XLA's threads now contend for one malloc lock. Kept as an option for other machines.
* 'default': glibc's own settings.

The numbers come from `python3 experiments/bench_train.py --malloc=compare`, one process per
mode, on a noisy 2-core machine (BUILD_NOTES, "Performance work").

Call `setup()` at the start of a program, before JAX starts its threads (the experiment mains
do); it is a no-op where glibc is absent. The environment variable ALALA_MALLOC picks the mode
(for benchmarks): 'thresholds' (default), 'tuned' or 'default'.
"""

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MODES = ("thresholds", "tuned", "default")


def setup(mode: str | None = None) -> bool:
  """Applies the malloc `mode` (default: $ALALA_MALLOC or 'thresholds'). True if applied."""
  mode = mode or os.environ.get("ALALA_MALLOC", "thresholds")
  if mode not in MODES:
    raise ValueError(f"ALALA_MALLOC / mode must be one of {MODES}, got {mode!r}")
  if mode == "default":
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 31)
    if mode == "tuned":
      ok = ok and libc.mallopt(M_ARENA_MAX, 1)
    return bool(ok)
  except (OSError, AttributeError):
    return False
