"""Quality report of a trained record model: PNG figures and an index.html (issue #16).

`quality_report` compares generated records with the real ones and writes into one folder:

* ``pvalues.png``: the zip-coordinate p-values (paper 000 Sec 2.2) of the generated records as
  a histogram against the U(0, 1) density, the held-out real records' p-values (scored against
  the training records' per-zip Gaussians, like the generated ones) as an outlined histogram,
  and both empirical CDFs against the diagonal; the KS statistics against U(0, 1) are in the
  title. Skipped when `config.eval.zip_field` is '' or the records lack the zip or coordinate
  fields (`config.eval.coord_fields`).
* ``map.png``: training and generated coordinates side by side on shared axes (the training
  records' extent), coloured by zip code (a categorical colormap cycled over the zips; one zip
  has one colour in both panels). Skipped when the records have no coordinates.
* ``marginals.png``: one row per field. A string field: its length distribution (real against
  generated step histograms) and the frequencies of its 10 most frequent values (grouped
  horizontal bars; the values ranked by the larger of their real and generated share). A
  numeric field: its histogram (real against generated, on the training records' range) and a
  quantile-quantile plot.
* ``index.html``: a table of headline numbers, the figures (or why one was skipped), and the
  privacy audit's numbers when a `privacy` dict (the keys `dcr/...`, `mia/...`,
  `extraction/...` and `exact_copy_rate` of `alala_jax.evaluate.evaluate`) is given, with the
  audit's verdict lines (`metrics.privacy.format_privacy`): distance to the closest record,
  membership inference, and the repeated encode/decode extraction rate of paper 000 App E.

"Real" means the training records throughout, except for the held-out p-values. Records are
dataclass instances (or dicts); comma-separated text records (`data.format = 'text'`, App F) are
parsed back into records of the schema first, a malformed generated line scoring p = 0 (as in
`evaluate.pvalues`) and left out of the map and the marginals. Figures use matplotlib's object
API (no pyplot), like `alala_jax.viz`.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import math
import os
import types
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from scipy import stats

from alala_jax.viz import _subplots

PVALUES_PNG = "pvalues.png"
MAP_PNG = "map.png"
MARGINALS_PNG = "marginals.png"
INDEX_HTML = "index.html"
TOP_VALUES = 10
_REAL, _GEN, _HELD = "tab:blue", "tab:orange", "tab:green"


def _field(r: Any, f: str) -> Any:
  return r[f] if isinstance(r, dict) else getattr(r, f)


def _has(r: Any, f: str) -> bool:
  return f in r if isinstance(r, dict) else hasattr(r, f)


def _attrs(records: Sequence[Any]) -> list[Any]:
  """Dict records as objects with attributes (what `evaluate.pvalues` reads)."""
  return [types.SimpleNamespace(**r) if isinstance(r, dict) else r for r in records]


def _names(r: Any) -> list[str]:
  if isinstance(r, dict):
    return list(r)
  if dataclasses.is_dataclass(r) and not isinstance(r, type):
    return [f.name for f in dataclasses.fields(r)]
  raise TypeError(f"records must be dataclass instances or dicts, got {type(r).__name__}")


def _is_num(v: Any) -> bool:
  return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def field_kinds(*record_lists: Sequence[Any]) -> tuple[list[str], list[str]]:
  """(string fields, numeric fields) of records: the top-level fields whose value is a str
  (resp. an int or float) in every record given; nested, list and Optional fields are left
  out."""
  records = [r for rs in record_lists for r in rs]
  names = _names(records[0])
  strs = [f for f in names if all(isinstance(_field(r, f), str) for r in records)]
  nums = [f for f in names if all(_is_num(_field(r, f)) for r in records)]
  return strs, nums


def _save(fig, path: str, title: str = "") -> str:
  # constrained layout keeps a suptitle clear of the axes for figures of any height
  fig.set_layout_engine("constrained")
  if title:
    fig.suptitle(title)
  fig.savefig(path, dpi=110)
  return path


def _parse_text(records: Sequence[Any], config) -> tuple[list[Any], int]:
  """Text lines (App F) parsed into records of the schema, malformed ones dropped: (records,
  number dropped). Other records come back as they are."""
  from alala_jax.data import datasets, text_format

  if not records or not isinstance(records[0], text_format.CsvText):
    return list(records), 0
  fmt = text_format.from_config(config.data, datasets.import_schema(config.data.schema))
  if fmt is None:
    raise ValueError("records are comma-separated text lines but config.data.format is not 'text'")
  parsed = [fmt.parse(r) for r in records]
  ok = [r for r in parsed if r is not None]
  return ok, len(parsed) - len(ok)


def coord_fields(config) -> tuple[str, str]:
  lat, lon = [f.strip() for f in config.eval.get("coord_fields", "lat,long").split(",")]
  return lat, lon


def _coords(records: Sequence[Any], lat: str, lon: str) -> np.ndarray:
  return np.array([[_field(r, lat), _field(r, lon)] for r in records], np.float64).reshape(-1, 2)


def _has_coords(records: Sequence[Any], lat: str, lon: str) -> bool:
  return all(_has(r, f) and _is_num(_field(r, f)) for r in records for f in (lat, lon))


def _ks(p: np.ndarray) -> tuple[float, float]:
  if not len(p):
    return float("nan"), float("nan")
  r = stats.kstest(p, "uniform")
  return float(r.statistic), float(r.pvalue)


def plot_pvalues(p_gen: np.ndarray, p_held: np.ndarray | None, out_png: str, title: str = ""):
  """Histogram (density, 20 bins) of the generated p-values, the held-out real ones outlined,
  the U(0, 1) density as a horizontal line (left), and the empirical CDFs (right).

  Returns:
    {'ks_stat', 'ks_pvalue'} of the generated p-values and, with `p_held`, 'heldout/ks_stat'
    and 'heldout/ks_pvalue' (scipy.stats.kstest against U(0, 1)).
  """
  out = dict(zip(("ks_stat", "ks_pvalue"), _ks(p_gen)))
  has_held = p_held is not None and len(p_held) > 0
  if has_held:
    out.update(zip(("heldout/ks_stat", "heldout/ks_pvalue"), _ks(p_held)))
  fig, (ax, ax_cdf) = _subplots(1, 2, figsize=(10, 3.8))
  bins = np.linspace(0, 1, 21)
  ax.hist(p_gen, bins, density=True, color=_GEN, alpha=0.6, label=f"generated ({len(p_gen)})")
  if has_held:
    ax.hist(
      p_held,
      bins,
      density=True,
      histtype="step",
      color=_HELD,
      lw=1.8,
      label=f"held-out real ({len(p_held)})",
    )
  ax.axhline(1.0, color="k", ls="--", lw=1, label="U(0, 1) density")
  ax.set_xlim(0, 1)
  ax.set_xlabel("zip-coordinate p-value")
  ax.set_ylabel("density")
  ax.legend(fontsize=8)
  for p, color, label in ((p_gen, _GEN, "generated"), (p_held, _HELD, "held-out real")):
    if p is not None and len(p):
      s = np.sort(p)
      ax_cdf.step(s, np.arange(1, len(s) + 1) / len(s), where="post", color=color, label=label)
  ax_cdf.plot([0, 1], [0, 1], "k--", lw=1, label="U(0, 1)")
  ax_cdf.set_xlim(0, 1)
  ax_cdf.set_ylim(0, 1)
  ax_cdf.set_xlabel("zip-coordinate p-value")
  ax_cdf.set_ylabel("empirical CDF")
  ax_cdf.grid(alpha=0.3)
  ax_cdf.legend(fontsize=8)
  ks = f"KS vs U(0,1): generated {out['ks_stat']:.3f}"
  if has_held:
    ks += f", held-out real {out['heldout/ks_stat']:.3f}"
  _save(fig, out_png, f"{title}\n{ks}" if title else ks)
  return out


def zip_colours(train_zips: Sequence[str], other_zips: Sequence[str] = ()) -> dict[str, Any]:
  """A colour per zip code, cycling over the 20 colours of 'tab20': the training zips by
  falling frequency (ties by name), then the zips only `other_zips` has, sorted."""
  counts = collections.Counter(train_zips)
  order = sorted(counts, key=lambda z: (-counts[z], z))
  order += sorted(set(other_zips) - set(counts))
  palette = colormaps["tab20"].colors
  return {z: palette[i % len(palette)] for i, z in enumerate(order)}


def plot_map(
  train_coords: np.ndarray,
  gen_coords: np.ndarray,
  out_png: str,
  train_zips: Sequence[str] | None = None,
  gen_zips: Sequence[str] | None = None,
  title: str = "",
) -> dict[str, float]:
  """Training (left) and generated (right) coordinates [N, 2] = (lat, long) as (long, lat)
  scatters on shared axes spanning the training records (5 % margin), coloured by zip when
  zips are given.

  Returns:
    {'map/generated_outside': generated points outside the shown extent (or not finite)}.
  """
  tc, gc = np.asarray(train_coords, np.float64), np.asarray(gen_coords, np.float64)
  colours = zip_colours(train_zips, gen_zips or ()) if train_zips is not None else None
  fig, axes = _subplots(1, 2, figsize=(11, 5.2), sharex=True, sharey=True)
  t_ok = np.all(np.isfinite(tc), 1)
  lo, hi = tc[t_ok].min(0), tc[t_ok].max(0)
  pad = 0.05 * np.maximum(hi - lo, 1e-6)
  lo, hi = lo - pad, hi + pad
  inside = np.all(np.isfinite(gc), 1) & np.all((gc >= lo) & (gc <= hi), 1)
  for ax, c, zips, name in (
    (axes[0], tc, train_zips, "training"),
    (axes[1], gc, gen_zips, "generated"),
  ):
    if colours is not None and zips is not None:
      col = [colours.get(z, (0.5, 0.5, 0.5)) for z in zips]
    else:
      col = _REAL if name == "training" else _GEN
    alpha = float(np.clip(np.sqrt(1000 / max(len(c), 1)), 0.3, 0.8))  # fainter when dense
    ax.scatter(c[:, 1], c[:, 0], s=2, c=col, alpha=alpha, linewidths=0)
    ax.set_title(f"{name} records ({len(c)})")
    ax.set_xlabel("longitude")
    ax.grid(alpha=0.2)
  axes[0].set_ylabel("latitude")
  axes[0].set_xlim(lo[1], hi[1])
  axes[0].set_ylim(lo[0], hi[0])
  outside = int(len(gc) - inside.sum())
  if outside:
    axes[1].set_title(f"generated records ({len(gc)}; {outside} outside the training extent)")
  sub = "colour = zip code (same zip, same colour)" if colours is not None else ""
  _save(fig, out_png, "\n".join(s for s in (title, sub) if s))
  return {"map/generated_outside": float(outside)}


def _top_values(real: list[str], gen: list[str], k: int) -> tuple[list[str], list[float], list]:
  rc, gcount = collections.Counter(real), collections.Counter(gen)
  rs = {v: c / max(len(real), 1) for v, c in rc.items()}
  gs = {v: c / max(len(gen), 1) for v, c in gcount.items()}
  vals = sorted(set(rs) | set(gs), key=lambda v: (-max(rs.get(v, 0), gs.get(v, 0)), v))[:k]
  return vals, [rs.get(v, 0.0) for v in vals], [gs.get(v, 0.0) for v in vals]


def _label(v: str, width: int = 22) -> str:
  if v == "":
    return "(empty)"
  return v if len(v) <= width else v[: width - 1] + "\u2026"


def plot_marginals(
  real: Sequence[Any],
  generated: Sequence[Any],
  out_png: str,
  string_fields: Sequence[str],
  numeric_fields: Sequence[str],
  title: str = "",
) -> dict[str, float]:
  """One row per field (module docstring): string fields (lengths; top values) first, then
  numeric fields (histogram; Q-Q plot).

  Returns:
    {'marginals/<field>/top_tv': half the summed |real - generated| share over the values
    shown (a lower bound of the total-variation distance of the field), per string field}.
  """
  fields = [(f, "str") for f in string_fields] + [(f, "num") for f in numeric_fields]
  if not fields:
    raise ValueError("plot_marginals needs at least one string or numeric field")
  fig, axes = _subplots(len(fields), 2, figsize=(11, 2.8 * len(fields)), squeeze=False)
  out: dict[str, float] = {}
  for (f, kind), (ax_l, ax_r) in zip(fields, axes):
    if kind == "str":
      rv = [_field(r, f) for r in real]
      gv = [_field(g, f) for g in generated]
      rl, gl = np.array([len(v) for v in rv]), np.array([len(v) for v in gv])
      top = max(int(rl.max(initial=0)), int(gl.max(initial=0)))
      bins = np.arange(top + 2) - 0.5
      ax_l.hist(rl, bins, density=True, histtype="step", color=_REAL, lw=1.5, label="real")
      ax_l.hist(gl, bins, density=True, histtype="step", color=_GEN, lw=1.5, label="generated")
      ax_l.set_xlabel(f"{f}: string length (characters)")
      ax_l.set_ylabel("share")
      ax_l.legend(fontsize=8)
      vals, rs, gs = _top_values(rv, gv, TOP_VALUES)
      y = np.arange(len(vals))
      ax_r.barh(y - 0.2, rs, 0.4, color=_REAL, label="real")
      ax_r.barh(y + 0.2, gs, 0.4, color=_GEN, label="generated")
      ax_r.set_yticks(y, [_label(v) for v in vals], fontsize=7)
      ax_r.invert_yaxis()
      ax_r.set_xlabel(f"{f}: share of records (top {len(vals)} values)")
      ax_r.legend(fontsize=8)
      out[f"marginals/{f}/top_tv"] = 0.5 * float(np.sum(np.abs(np.array(rs) - np.array(gs))))
    else:
      rv = np.array([_field(r, f) for r in real], np.float64)
      gv = np.array([_field(g, f) for g in generated], np.float64)
      rv, gv = rv[np.isfinite(rv)], gv[np.isfinite(gv)]
      lo, hi = (rv.min(), rv.max()) if len(rv) else (0.0, 1.0)
      pad = 0.05 * max(hi - lo, 1e-6)
      bins = np.linspace(lo - pad, hi + pad, 41)
      outside = int(np.sum((gv < bins[0]) | (gv > bins[-1])))
      ax_l.hist(rv, bins, density=True, histtype="step", color=_REAL, lw=1.5, label="real")
      ax_l.hist(
        gv,
        bins,
        density=True,
        histtype="step",
        color=_GEN,
        lw=1.5,
        label="generated" + (f" ({outside} outside)" if outside else ""),
      )
      ax_l.set_xlabel(f"{f}")
      ax_l.set_ylabel("density")
      ax_l.legend(fontsize=8)
      if len(rv) and len(gv):
        q = np.linspace(0.005, 0.995, 100)
        qr, qg = np.quantile(rv, q), np.quantile(gv, q)
        ax_r.plot(qr, qg, ".", ms=3, color=_GEN)
        ends = [min(qr[0], qg[0]), max(qr[-1], qg[-1])]
        ax_r.plot(ends, ends, "k--", lw=1)
      ax_r.set_xlabel(f"{f}: real quantile")
      ax_r.set_ylabel("generated quantile")
      ax_r.grid(alpha=0.3)
  _save(fig, out_png, title)
  return out


def privacy_lines(privacy: Mapping[str, Any]) -> dict[str, Any]:
  """The privacy keys of an evaluation dict: `dcr/...` and `mia/...` (sorted), the repeated
  encode/decode extraction keys `extraction/...` (in the evaluation's order: sizes, then round
  by round), `exact_copy_rate` and `train_duplicate_rate` (its baseline), in that order."""
  keys = sorted(k for k in privacy if k.startswith(("dcr/", "mia/")))
  keys += [k for k in privacy if k.startswith("extraction/")]
  keys += [k for k in ("exact_copy_rate", "train_duplicate_rate") if k in privacy]
  return {k: privacy[k] for k in keys}


def _fmt(v: Any) -> str:
  if isinstance(v, float):
    if math.isnan(v):
      return "nan"
    return f"{v:.0f}" if v.is_integer() and abs(v) >= 1 else f"{v:.4g}"
  return str(v)


_DESCRIPTIONS = {
  "records/train": "training records (the 'real' side of the figures)",
  "records/test": "held-out real records",
  "records/generated": "generated records",
  "generated_malformed": "generated text lines that did not parse (p = 0, left out of the figures)",
  "pvalue/mean": "zip-coordinate p-value mean (ideal 0.5)",
  "pvalue/median": "zip-coordinate p-value median (ideal 0.5)",
  "pvalue/std": "zip-coordinate p-value std (ideal 0.289)",
  "pvalue/zip_unseen": "generated zips absent from the training data",
  "ks_stat": "KS statistic of the generated p-values vs U(0,1) (0 = uniform)",
  "ks_pvalue": "its p-value",
  "heldout/pvalue/mean": "held-out real records' p-value mean",
  "heldout/ks_stat": "KS statistic of the held-out real p-values vs U(0,1)",
  "heldout/ks_pvalue": "its p-value",
  "map/generated_outside": "generated points outside the training records' extent",
}


def _describe(key: str) -> str:
  if key in _DESCRIPTIONS:
    return _DESCRIPTIONS[key]
  if key.startswith("marginals/") and key.endswith("/top_tv"):
    return "total-variation distance over the top values shown (a lower bound)"
  if key.startswith("in_train/"):
    return "share of generated values seen in the training data"
  return ""


_EXTRACTION_DESCRIPTIONS = {
  "field": "field of the repeated encode/decode extraction audit (paper 000 App E)",
  "n_train_rare": "rare training values (at most max_count occurrences, never held out)",
  "n_holdout_rare": "rare held-out values (the baseline: never trained on)",
  "n_train_compared": "training values the rare ones were counted in (all, or m for max_count > 1)",
  "n_holdout_compared": "held-out values the rare ones were counted in",
  "max_count": "occurrences that still count as rare",
  "rounds": "rounds of x -> g(mu(x)) after generation",
  "n_generated": "generated records put through the rounds",
  "train_rare": "share of rare training values reproduced after {n} rounds",
  "holdout_rare": "share of rare held-out values reproduced after {n} rounds (baseline)",
  "ratio": "training share / held-out share after {n} rounds (1 = no extraction)",
  "pvalue": "one-sided Fisher p-value of 'training values reproduced more often' ({n} rounds)",
  "in_train": "share of generated values seen in training after {n} rounds (App E Fig 15)",
}


def _describe_privacy(key: str) -> str:
  if not key.startswith("extraction/"):
    return ""
  name, _, n = key[len("extraction/") :].partition("@")
  return _EXTRACTION_DESCRIPTIONS.get(name, "").format(n=n)


def _table(rows: Mapping[str, Any], describe=_describe) -> str:
  body = "".join(
    f"<tr><td><code>{html.escape(k)}</code></td><td class='num'>{html.escape(_fmt(v))}</td>"
    f"<td>{html.escape(describe(k))}</td></tr>\n"
    for k, v in rows.items()
  )
  return f"<table>\n{body}</table>\n"


def write_html(
  path: str,
  title: str,
  numbers: Mapping[str, Any],
  sections: Sequence[tuple[str, str | None, str]],
  privacy: Mapping[str, Any] | None,
) -> str:
  """index.html: `numbers` as a table, then each (heading, png file name or None, note)."""
  from alala_jax.metrics import privacy as privacy_lib

  parts = [
    "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>",
    f"<title>{html.escape(title or 'quality report')}</title>",
    "<style>body{font-family:sans-serif;max-width:1250px;margin:1em auto}"
    "table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 8px}"
    "td.num{text-align:right;font-family:monospace}.note{color:#a33}"
    "img{max-width:100%}</style></head><body>",
    f"<h1>{html.escape(title or 'Quality report')}</h1>",
    "<h2>Headline numbers</h2>",
    _table(numbers),
  ]
  for heading, png, note in sections:
    parts.append(f"<h2>{html.escape(heading)}</h2>")
    if note:  # why a figure is missing (highlighted), or a remark on it
      cls = "" if png else " class='note'"
      parts.append(f"<p{cls}>{html.escape(note)}</p>")
    if png:
      parts.append(f"<p><img src='{html.escape(png)}' alt='{html.escape(heading)}'></p>")
  parts.append("<h2>Privacy audit</h2>")
  lines = privacy_lines(privacy) if privacy else {}
  if lines:
    src = "the run's evaluation"
    if isinstance(privacy.get("step"), (int, float)):
      src += f" at step {int(privacy['step'])}"
    parts.append(
      f"<p>From {html.escape(src)} (its own generated sample, not the records above).</p>"
    )
    parts.append(_table(lines, _describe_privacy))
    text = privacy_lib.format_privacy(privacy)
    if text:
      parts.append("<pre>" + html.escape("\n".join(s.strip() for s in text)) + "</pre>")
  else:
    parts.append(
      "<p class='note'>No privacy numbers given (run experiments.evaluate for the audit).</p>"
    )
  parts.append("</body></html>\n")
  with open(path, "w") as f:
    f.write("\n".join(parts))
  return path


def quality_report(
  train: Sequence[Any],
  test: Sequence[Any],
  generated: Sequence[Any],
  config,
  out_dir: str,
  *,
  privacy: Mapping[str, Any] | None = None,
  title: str = "",
) -> dict[str, Any]:
  """Writes the figures of the module docstring and index.html into `out_dir` (created).

  Args:
    train, test, generated: records (dataclass instances, dicts, or App F text lines);
      `test` may be empty (no held-out p-values then).
    config: the run's config (`eval.zip_field`, `eval.coord_fields`, `data` for text lines).
    out_dir: folder of the PNGs and index.html.
    privacy: an evaluation dict (`alala_jax.evaluate.evaluate`'s, or the 'final' row of
      metrics.jsonl); its privacy keys are listed in the html.
    title: heading of the html and the figures.

  Returns:
    {'html': path of index.html, 'figures': {'pvalues' | 'map' | 'marginals': png path},
    'skipped': {figure: reason}, 'numbers': {headline name: value}, 'privacy': {key: value}}.
  """
  from alala_jax import evaluate
  from alala_jax.metrics import realism

  if not train or not generated:
    raise ValueError(
      f"quality_report needs training and generated records, got {len(train)} and {len(generated)}"
    )
  os.makedirs(out_dir, exist_ok=True)
  ec = config.eval
  real, _ = _parse_text(train, config)
  held, _ = _parse_text(test, config)
  gen, malformed = _parse_text(generated, config)
  numbers: dict[str, Any] = {
    "records/train": len(train),
    "records/test": len(test),
    "records/generated": len(generated),
  }
  if malformed:
    numbers["generated_malformed"] = malformed
  figures: dict[str, str] = {}
  skipped: dict[str, str] = {}
  sections: list[tuple[str, str | None, str]] = []
  lat, lon = coord_fields(config)
  with_coords = bool(gen) and _has_coords(real + held + gen, lat, lon)
  zf = ec.zip_field
  with_zip = bool(zf) and bool(gen) and all(_has(r, zf) for r in real + held + gen)

  # a. p-values
  heading = "Zip-coordinate p-values"
  if not zf:
    skipped["pvalues"] = "config.eval.zip_field is empty: no zip-coordinate p-values"
  elif not with_zip or not with_coords:
    skipped["pvalues"] = (
      f"the records have no {zf!r} field or no numeric coordinates ({lat!r}, {lon!r}): "
      "no zip-coordinate p-values"
    )
  else:
    p_gen, _, _, extra = evaluate.pvalues(_attrs(train), _attrs(generated), config)
    numbers.update({k: v for k, v in extra.items() if k.startswith("pvalue/")})
    p_held = None
    if test:
      p_held, _, _, extra_h = evaluate.pvalues(_attrs(train), _attrs(test), config)
      numbers["heldout/pvalue/mean"] = extra_h["pvalue/mean"]
    figures["pvalues"] = os.path.join(out_dir, PVALUES_PNG)
    numbers.update(plot_pvalues(p_gen, p_held, figures["pvalues"], title))
  sections.append(
    (heading, PVALUES_PNG if "pvalues" in figures else None, skipped.get("pvalues", ""))
  )

  # b. map
  heading = "Map: training vs generated coordinates"
  if not with_coords:
    skipped["map"] = f"the records have no numeric coordinates ({lat!r}, {lon!r}): no map"
  else:
    figures["map"] = os.path.join(out_dir, MAP_PNG)
    zips = lambda rs: [_field(r, zf) for r in rs] if with_zip else None
    numbers.update(
      plot_map(
        _coords(real, lat, lon),
        _coords(gen, lat, lon),
        figures["map"],
        zips(real),
        zips(gen),
        title,
      )
    )
  sections.append((heading, MAP_PNG if "map" in figures else None, skipped.get("map", "")))

  # c. marginals
  heading = "Per-field marginals: real (training) vs generated"
  strs, nums = field_kinds(real, gen) if gen else ([], [])
  # a field with one and the same value in every record (e.g. an always-empty unit) gets no row
  const = [f for f in strs + nums if len({_field(r, f) for r in real + gen}) == 1]
  strs, nums = [f for f in strs if f not in const], [f for f in nums if f not in const]
  note = ""
  if const:
    note = "one value in every real and generated record (no row): " + ", ".join(
      f"{f} = {_field(real[0], f)!r}" for f in const
    )
  if not strs and not nums:
    skipped["marginals"] = "no generated record parsed, or no string or numeric field that varies"
    note = "; ".join(s for s in (skipped["marginals"], note) if s)
  else:
    figures["marginals"] = os.path.join(out_dir, MARGINALS_PNG)
    numbers.update(plot_marginals(real, gen, figures["marginals"], strs, nums, title))
    numbers.update(realism.in_train_shares(gen, real, strs))
  sections.append((heading, MARGINALS_PNG if "marginals" in figures else None, note))

  for name, png in (("pvalues", PVALUES_PNG), ("map", MAP_PNG), ("marginals", MARGINALS_PNG)):
    stale = os.path.join(out_dir, png)
    if name in skipped and os.path.exists(stale):  # an earlier report's figure
      os.remove(stale)
  priv = privacy_lines(privacy) if privacy else {}
  index = write_html(os.path.join(out_dir, INDEX_HTML), title, numbers, sections, privacy)
  return {
    "html": index,
    "figures": figures,
    "skipped": skipped,
    "numbers": numbers,
    "privacy": priv,
  }
