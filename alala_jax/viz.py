"""Plots of measured results (PNG files). Figures are built with matplotlib's object API
(`matplotlib.figure.Figure`), which renders without pyplot and never touches the caller's
backend: importing this module in a notebook leaves its inline backend alone."""

from __future__ import annotations

import json
from typing import Sequence

from matplotlib.figure import Figure


def _subplots(*args, **kw):
  """Like `plt.subplots`, without pyplot's global figure manager."""
  fig = Figure(figsize=kw.pop("figsize", None))
  return fig, fig.subplots(*args, **kw)


def _save(fig, out_png: str, title: str = "", suptitle: bool = True) -> None:
  if title:
    fig.suptitle(title) if suptitle else fig.axes[0].set_title(title)
  fig.tight_layout()
  fig.savefig(out_png, dpi=110)


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
  fig, axes = _subplots(1, 2, figsize=(10, 3.6))
  for ax, m in zip(axes, ("loss", "bpc")):
    for split, style in (("train", "-"), ("test", "--"), ("generated", ":")):
      if f"{split}/{m}" in curves:
        steps, vals = curves[f"{split}/{m}"]
        ax.plot(steps, vals, style, marker="o", ms=3, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per field, nats)" if m == "loss" else "bits per character")
    ax.grid(alpha=0.3)
    ax.legend()
  _save(fig, out_png, title)
  return curves


def plot_repeated_encode_decode(
  stats: dict[str, list[dict]], out_png: str, title: str = ""
) -> None:
  """App E: p-value box plots over rounds n = 0..N (Figs 12-14, one panel per start set,
  e.g. {'generated': [...], 'training': [...]}) and the share of generated street names
  present in the training data per round (Figs 15-17)."""
  names = list(stats)
  has_share = all("in_train" in r for s in stats.values() for r in s)
  fig, axes = _subplots(
    1, len(names) + has_share, figsize=(5 * (len(names) + has_share), 3.6), squeeze=False
  )
  for ax, name in zip(axes[0], names):
    rows = stats[name]
    ax.boxplot([r["pvalues"] for r in rows], positions=range(len(rows)), showfliers=False)
    ax.plot(range(len(rows)), [r["mean"] for r in rows], "rx", label="mean")
    ax.set_xlabel("round n of encoding/decoding")
    ax.set_ylabel("zip-coordinate p-value")
    ax.set_title(f"starting from {name} records")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
  if has_share:
    ax = axes[0][-1]
    for name in names:
      ax.plot([r["in_train"] for r in stats[name]], marker="o", label=name)
    ax.set_xlabel("round n of encoding/decoding")
    ax.set_ylabel("share of street names in training data")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
  _save(fig, out_png, title)


def plot_interpolation_map(
  train_coords, path_coords, labels: Sequence[str], out_png: str, title: str = ""
) -> None:
  """App D (Figs 9-11): training records as a grey map of (long, lat), the decoded
  interpolation path coloured from the first record (purple) to the second (yellow)."""
  import numpy as np

  tc, pc = np.asarray(train_coords), np.asarray(path_coords)
  fig, ax = _subplots(figsize=(6, 7))
  ax.scatter(tc[:, 1], tc[:, 0], s=1, c="0.8", label="training records")
  sc = ax.scatter(
    pc[:, 1],
    pc[:, 0],
    c=np.linspace(0, 1, len(pc)),
    cmap="plasma",
    s=30,
    edgecolors="k",
    linewidths=0.3,
    zorder=3,
  )
  ax.plot(pc[:, 1], pc[:, 0], "-", c="0.3", lw=0.5, zorder=2)
  for i in (0, len(pc) - 1):
    ax.annotate(
      labels[i], (pc[i, 1], pc[i, 0]), fontsize=7, xytext=(4, 4), textcoords="offset points"
    )
  fig.colorbar(sc, ax=ax, label="interpolation t")
  ax.set_xlabel("longitude")
  ax.set_ylabel("latitude")
  _save(fig, out_png, title, suptitle=False)
