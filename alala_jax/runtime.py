"""Process set-up for fast JAX on CPU (DESIGN §5): glibc malloc modes and XLA:CPU's dot library.

**Dots** (`ALALA_XLA_DOTS`, applied through XLA_FLAGS before JAX starts its backend):

* 'eigen' (the default): `--xla_cpu_experimental_ynn_fusion_type=` turns XLA:CPU's YNNPACK
  fusions off, so dots and their fused element-wise ops run as Eigen contractions on the
  intra-op thread pool. The default Address step (batch 256, latent 128, jax 0.10.2) took
  243.6 ms against 267.2 ms with YNNPACK, 1.10x (`bench_train.py --dots=compare --repeats=2`:
  four processes in ABBA order, 242 / 245 ms against 257 / 277 ms; BUILD_NOTES "Performance
  work"), although YNNPACK's 1024^3 matmul is faster (151-170 against 130-138 GFLOP/s): the
  step's matmuls are small ([256, 144] x [144, 128] gates) and short chains of them.
* 'ynn': XLA's own default (YNNPACK fusions on).

A flag already in XLA_FLAGS wins: the set-up never overrides a user's
`--xla_cpu_experimental_ynn_fusion_type`.

**Malloc** (`ALALA_MALLOC`):

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

The numbers come from `python -m experiments.bench_train --malloc=compare`, one process per
mode, on a noisy 2-core machine (BUILD_NOTES, "Performance work").

Call `setup()` at the start of a program, before JAX starts its backend (the experiment mains
do; in a notebook, before the first JAX computation). The malloc part is a no-op where glibc is
absent. The environment variables pick the modes for benchmarks: ALALA_MALLOC 'thresholds'
(default), 'tuned' or 'default'; ALALA_XLA_DOTS 'eigen' (default) or 'ynn'.
"""

import ctypes
import ctypes.util
import os
import sys
import warnings

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MODES = ("thresholds", "tuned", "default")
DOT_MODES = ("eigen", "ynn")
_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
_USER_XLA_FLAGS: str | None = None  # $XLA_FLAGS before setup_xla added to it


def setup(mode: str | None = None, dots: str | None = None) -> bool:
  """Applies the malloc `mode` (default: $ALALA_MALLOC or 'thresholds') and the XLA:CPU `dots`
  library (default: $ALALA_XLA_DOTS or 'eigen'). True if the malloc mode was applied."""
  setup_xla(dots)
  return setup_malloc(mode)


def xla_flags(dots: str, current: str) -> str:
  """XLA_FLAGS `current` with the flags of dot library `dots` added (a flag already present in
  `current` is kept as it is)."""
  if dots not in DOT_MODES:
    raise ValueError(f"ALALA_XLA_DOTS / dots must be one of {DOT_MODES}, got {dots!r}")
  if dots == "ynn" or _YNN_FLAG in current:
    return current
  return f"{current} {_YNN_FLAG}=".strip()


def setup_xla(dots: str | None = None) -> None:
  """Adds the XLA:CPU flags of `dots` to $XLA_FLAGS; warns if JAX's backend already started
  (XLA reads the flags once, when it creates the backend)."""
  global _USER_XLA_FLAGS
  dots = dots or os.environ.get("ALALA_XLA_DOTS", "eigen")
  new = xla_flags(dots, os.environ.get("XLA_FLAGS", ""))
  if new == os.environ.get("XLA_FLAGS", ""):
    return
  if _USER_XLA_FLAGS is None:
    _USER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
  bridge = sys.modules.get("jax._src.xla_bridge")
  if bridge is not None and getattr(bridge, "backends_are_initialized", lambda: False)():
    warnings.warn(
      f"alala_jax.runtime.setup: JAX's backend is already initialised, so "
      f"ALALA_XLA_DOTS={dots!r} has no effect in this process; call setup() first."
    )
  os.environ["XLA_FLAGS"] = new


def user_xla_flags() -> str:
  """$XLA_FLAGS as it was before `setup_xla` added to it (for child processes that pick their
  own ALALA_XLA_DOTS)."""
  return os.environ.get("XLA_FLAGS", "") if _USER_XLA_FLAGS is None else _USER_XLA_FLAGS


def setup_malloc(mode: str | None = None) -> bool:
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
