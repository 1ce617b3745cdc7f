import json

import pytest

from alala_jax import viz


def test_loss_curves_from_metrics(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [
    {"step": 3, "split": "train", "loss": 9.0},
    {
      "step": 5,
      "split": "eval",
      "train/loss": 2.0,
      "test/loss": 2.1,
      "generated/loss": 3.0,
      "train/bpc": 1.0,
      "test/bpc": 1.1,
      "generated/bpc": 1.5,
    },
    {
      "step": 10,
      "split": "eval",
      "train/loss": 1.0,
      "test/loss": 1.2,
      "generated/loss": 2.5,
      "train/bpc": 0.5,
      "test/bpc": 0.6,
      "generated/bpc": 1.2,
    },
  ]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  png = tmp_path / "l.png"
  curves = viz.plot_loss_curves(str(path), str(png), "t")
  assert curves["generated/loss"] == ([5, 10], [3.0, 2.5])
  assert curves["test/bpc"] == ([5, 10], [1.1, 0.6])
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_eval_rows_is_an_error(tmp_path):
  path = tmp_path / "m.jsonl"
  path.write_text(json.dumps({"step": 1, "split": "train", "loss": 1.0}) + "\n")
  with pytest.raises(ValueError, match="no 'eval' rows"):
    viz.plot_loss_curves(str(path), str(tmp_path / "x.png"))
