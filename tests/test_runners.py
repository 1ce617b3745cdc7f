"""The experiment runners' smoke runs, each in its own process (absl flags): paper 004's
synthetic table with the validation rule evaluates the best checkpoint, and says so."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_savae_synthetic_with_halving_evaluates_the_best_checkpoint(tmp_path):
  stem, wd = str(tmp_path / "table"), str(tmp_path / "rows")
  cmd = [sys.executable, "-m", "experiments.savae_synthetic", "--smoke", "--rows=learned/vae"]
  cmd += ["--extra=halving=savae", f"--results={stem}", f"--workdir={wd}"]
  subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
  with open(stem + ".json") as f:
    row = json.load(f)["learned/vae"]
  (row_dir,) = os.listdir(wd)
  with open(os.path.join(wd, row_dir, "metrics.jsonl")) as f:
    valid = [json.loads(line) for line in f if '"valid"' in line]
  best = min(valid, key=lambda r: r["valid/bound"])
  assert row["trained_steps"] == row["steps"] > best["step"]  # the smoke run never stops
  assert row["evaluated_step"] == best["step"]
  with open(stem + ".md") as f:
    assert f"{row['trained_steps']} / {best['step']}" in f.read()
