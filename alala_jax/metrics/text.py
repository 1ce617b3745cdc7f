"""String metrics (paper 000 Sec 2.4, App E).

d_Lev per character = Levenshtein(original, reconstruction) / len(original), averaged per
example. Rule for an empty original (not in the paper): divide by max(len, 1), so an empty
original scores 0 if reconstructed empty and the reconstruction's length otherwise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rapidfuzz.distance import Levenshtein


def levenshtein(a: str, b: str) -> int:
  """Edit distance (insertions, deletions, substitutions all cost 1), by rapidfuzz's C
  implementation; `levenshtein_python` is the reference it is tested against."""
  return Levenshtein.distance(a, b)


def levenshtein_python(a: str, b: str) -> int:
  """The same edit distance as a pure-Python dynamic programme (the tests' reference)."""
  if len(a) < len(b):
    a, b = b, a
  prev = list(range(len(b) + 1))
  for i, ca in enumerate(a, 1):
    cur = [i]
    for j, cb in enumerate(b, 1):
      cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
    prev = cur
  return prev[-1]


def levenshtein_per_char(originals: Sequence[str], recons: Sequence[str]) -> float:
  """Mean over examples of Levenshtein(orig, recon) / max(len(orig), 1)."""
  d = [levenshtein(o, r) / max(len(o), 1) for o, r in zip(originals, recons, strict=True)]
  return float(np.mean(d))


def exact_copy_rate(generated: Sequence[tuple], training: set) -> float:
  """Share of generated records (as tuples of field values) that equal a training record."""
  return float(np.mean([g in training for g in generated])) if len(generated) else 0.0
