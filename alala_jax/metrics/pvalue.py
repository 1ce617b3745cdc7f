"""Zip-coordinate p-value (paper 000, Sec 2.2 and 2.4; DESIGN §3).

Per zip code of the TRAINING data: mean mu and sample covariance Sigma (ddof = 1) of the
coordinates. For a record: d^2 = (x - mu)^T Sigma^-1 (x - mu), p = 1 - CDF_chi2_2(d^2).
A zip absent from the training data gets p = 0 (the paper's rule). Our documented extension: a
zip with fewer than 2 rows or a singular covariance (condition number > 1e12) also gets p = 0.
The empty postcode is a category like any other. Ideal: uniform on [0, 1], i.e.
mean 0.5, median 0.5, std 1/sqrt(12) = 0.289.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import stats

MAX_COND = 1e12


@dataclasses.dataclass(frozen=True)
class ZipStats:
  index: dict[str, int]  # zip -> row of the arrays below
  mean: np.ndarray  # [Z, 2]
  inv_cov: np.ndarray  # [Z, 2, 2]
  valid: np.ndarray  # [Z] bool


def fit_zip_stats(zips: Sequence[str], coords: np.ndarray) -> ZipStats:
  """Per-zip mean and inverse sample covariance of coords [N, 2]."""
  coords = np.asarray(coords, np.float64)
  keys = sorted(set(zips))
  index = {z: i for i, z in enumerate(keys)}
  ids = np.array([index[z] for z in zips])
  mean = np.zeros((len(keys), 2))
  inv_cov = np.zeros((len(keys), 2, 2))
  valid = np.zeros(len(keys), bool)
  for i in range(len(keys)):
    x = coords[ids == i]
    mean[i] = x.mean(0)
    if len(x) < 2:
      continue
    cov = np.cov(x, rowvar=False, ddof=1)
    if np.linalg.cond(cov) > MAX_COND:
      continue
    inv_cov[i] = np.linalg.inv(cov)
    valid[i] = True
  return ZipStats(index, mean, inv_cov, valid)


def zip_pvalues(zs: ZipStats, zips: Sequence[str], coords: np.ndarray) -> np.ndarray:
  """p-values [N] of coords [N, 2] given their zips, under per-zip Gaussians of `zs`."""
  coords = np.asarray(coords, np.float64)
  ids = np.array([zs.index.get(z, -1) for z in zips])
  known = ids >= 0
  safe = np.where(known, ids, 0)
  d = coords - zs.mean[safe]
  d2 = np.einsum("ni,nij,nj->n", d, zs.inv_cov[safe], d)
  p = stats.chi2.sf(d2, df=2)
  ok = known & zs.valid[safe] & np.isfinite(p)
  return np.where(ok, p, 0.0)


def summarize(p: np.ndarray) -> dict[str, float]:
  """Mean, median and standard deviation of p-values."""
  return {"mean": float(np.mean(p)), "median": float(np.median(p)), "std": float(np.std(p))}
