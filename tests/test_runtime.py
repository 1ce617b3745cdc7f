"""Process set-up (alala_jax.runtime): malloc modes and XLA:CPU dot flags, checked in fresh
processes where they act on process start."""

import os
import subprocess
import sys

import pytest

from alala_jax import runtime


def test_unknown_mode_is_an_error(monkeypatch):
  monkeypatch.setenv("ALALA_MALLOC", "fast")
  with pytest.raises(ValueError, match="ALALA_MALLOC"):
    runtime.setup()


@pytest.mark.parametrize(
  "mode,applied", [("tuned", True), ("thresholds", True), ("default", False)]
)
def test_modes_apply_in_a_fresh_process(mode, applied):
  if not sys.platform.startswith("linux"):
    pytest.skip("mallopt is glibc's")
  out = subprocess.run(
    [sys.executable, "-c", f"from alala_jax import runtime; print(runtime.setup({mode!r}))"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout.strip()
  assert out == str(applied)


@pytest.mark.parametrize(
  "current,dots,expected",
  [
    ("", "eigen", "--xla_cpu_experimental_ynn_fusion_type="),
    (
      "--xla_force_host_platform_device_count=8",
      "eigen",
      "--xla_force_host_platform_device_count=8 --xla_cpu_experimental_ynn_fusion_type=",
    ),
    (
      "--xla_cpu_experimental_ynn_fusion_type=individual_dot",
      "eigen",
      "--xla_cpu_experimental_ynn_fusion_type=individual_dot",
    ),  # the user's flag wins
    ("--xla_backend_optimization_level=0", "ynn", "--xla_backend_optimization_level=0"),
  ],
)
def test_xla_flags(current, dots, expected):
  assert runtime.xla_flags(dots, current) == expected


def test_unknown_dots_is_an_error():
  with pytest.raises(ValueError, match="ALALA_XLA_DOTS"):
    runtime.xla_flags("mkl", "")


def _fresh(code: str, **env) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "ALALA_XLA_DOTS")} | env
  return subprocess.run(
    [sys.executable, "-W", "always", "-c", code],
    capture_output=True,
    text=True,
    check=True,
    env=env,
  )


def test_setup_sets_xla_flags_before_the_backend_starts():
  code = (
    "import os; from alala_jax import runtime; runtime.setup(); import jax; "
    "jax.numpy.ones(2).block_until_ready(); print(os.environ.get('XLA_FLAGS', '<unset>')); "
    "print(runtime.user_xla_flags())"
  )
  out = _fresh(code, XLA_FLAGS="--xla_cpu_enable_fast_math=false").stdout.splitlines()
  assert out == [
    "--xla_cpu_enable_fast_math=false --xla_cpu_experimental_ynn_fusion_type=",
    "--xla_cpu_enable_fast_math=false",
  ]
  out = _fresh(code, ALALA_XLA_DOTS="ynn").stdout.splitlines()
  assert out == ["<unset>", ""]


def test_setup_after_the_backend_started_warns():
  code = (
    "import jax; jax.numpy.ones(2).block_until_ready(); from alala_jax import runtime; "
    "runtime.setup()"
  )
  assert "already initialised" in _fresh(code).stderr
