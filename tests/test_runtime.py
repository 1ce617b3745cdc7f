"""Malloc set-up modes (alala_jax.runtime), each checked in a fresh process."""

import subprocess
import sys

import pytest

from alala_jax import runtime


def test_unknown_mode_is_an_error(monkeypatch):
  monkeypatch.setenv("ALALA_MALLOC", "fast")
  with pytest.raises(ValueError, match="ALALA_MALLOC"):
    runtime.setup()


@pytest.mark.parametrize("mode,applied", [("tuned", True), ("thresholds", True),
                                          ("default", False)])
def test_modes_apply_in_a_fresh_process(mode, applied):
  if not sys.platform.startswith("linux"):
    pytest.skip("mallopt is glibc's")
  out = subprocess.run([sys.executable, "-c", "from alala_jax import runtime; "
                        f"print(runtime.setup({mode!r}))"], capture_output=True, text=True,
                       check=True).stdout.strip()
  assert out == str(applied)
