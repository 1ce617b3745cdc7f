"""Plots of measured results (matplotlib, Agg backend; PNG files)."""

from __future__ import annotations

import json
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def loss_curves(rows: Sequence[dict]) -> dict[str, tuple[list[int], list[float]]]:
  """(steps, values) of train / test / generated loss and BPC from metrics.jsonl rows."""
  out: dict[str, tuple[list[int], list[float]]] = {}
  for r in rows:
    if r.get("split") != "eval":
      continue
    for split in ("train", "test", "generated"):
      for m in ("loss", "bpc"):
        k = f"{split}/{m}"
        if k in r:
          out.setdefault(k, ([], []))
          out[k][0].append(r["step"])
          out[k][1].append(r[k])
  return out


def plot_loss_curves(metrics_path: str, out_png: str, title: str = "") -> dict:
  """Loss (left) and BPC (right) of training, test and generated data over training
  (paper 000 Figs 1-4: generated loss lagging or rising while train and test fall)."""
  curves = loss_curves(read_metrics(metrics_path))
  if not curves:
    raise ValueError(f"{metrics_path}: no 'eval' rows with train/test/generated losses")
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for ax, m in zip(axes, ("loss", "bpc")):
    for split, style in (("train", "-"), ("test", "--"), ("generated", ":")):
      if f"{split}/{m}" in curves:
        steps, vals = curves[f"{split}/{m}"]
        ax.plot(steps, vals, style, marker="o", ms=3, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per field, nats)" if m == "loss" else "bits per character")
    ax.grid(alpha=0.3)
    ax.legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(out_png, dpi=110)
  plt.close(fig)
  return curves
