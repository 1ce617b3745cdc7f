r"""Fuzzing campaign of the schema parser and the CSV loader (issue #16), with counts.

  python -m experiments.fuzz_campaign [--schema_examples=5000] [--csv_examples=5000] \
      [--seed=0] [--out=results/fuzz_campaign.md]

Runs the strategies and oracles of experiments/fuzz_strategies.py (the ones tests/test_fuzz.py
runs for a few hundred examples in CI) for many more examples, on four targets:

* schema: generated dataclasses (nested, Optional, list, Literal, unsupported and unresolvable
  annotations, reserved names, empty and recursive records) and non-dataclass inputs, through
  `parse_schema`;
* CSV, arbitrary bytes: random bytes and random runs of CSV-ish tokens, through `read_csv`;
* CSV, structured: files written cell by cell with valid and invalid values, blank and ragged
  rows, quoted line breaks, NUL, BOM, mixed line ends, bytes that are not UTF-8;
* CSV, mutated: structured files with 1-3 byte-level mutations.

Each CSV input is read with on_bad_row 'error' or 'skip' (drawn). The allowed outcomes are records
/ an accepted schema, or an error naming the file, line and field (`Class.field` for schemas)
that matches what the oracle predicts; the table counts them by kind. Any other exception, or an
outcome that differs from the oracle's, is counted as a failure (with the first examples shown)
and the script exits with status 1.
"""

from __future__ import annotations

import collections
import os
import tempfile
import time

from absl import app, flags
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from experiments import fuzz_strategies as fz

_SCHEMA_EXAMPLES = flags.DEFINE_integer("schema_examples", 5000, "Schema inputs to try.")
_CSV_EXAMPLES = flags.DEFINE_integer("csv_examples", 5000, "Inputs per CSV target.")
_SEED = flags.DEFINE_integer("seed", 0, "Hypothesis seed (the campaign is reproducible).")
_OUT = flags.DEFINE_string("out", "results/fuzz_campaign.md", "Markdown report to write.")

FAILURE_PREFIXES = ("unexpected exception", "oracle mismatch")


def run_target(strategy, check, examples: int, seed: int, key=None) -> dict:
  """Draws `examples` inputs from `strategy` and runs `check` on each; counts the outcomes."""
  counts = collections.Counter()
  failures: list[str] = []
  distinct = set()
  totals = collections.Counter()

  @hypothesis_seed(seed)
  @settings(
    max_examples=examples,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
  )
  @given(strategy)
  def body(case):
    totals["tried"] += 1
    if key is not None:
      distinct.add(key(case))
    try:
      outcome = check(case)
    except AssertionError as e:
      counts["oracle mismatch (AssertionError)"] += 1
      if len(failures) < 5:
        failures.append(f"{case!r:.600}: {e!s:.600}")
      return
    except Exception as e:  # the failures this campaign looks for
      counts[f"unexpected exception: {type(e).__name__}"] += 1
      if len(failures) < 5:
        failures.append(f"{case!r:.600}: {type(e).__name__}: {e!s:.600}")
      return
    if isinstance(outcome, fz.CsvOutcome):
      totals["records"] += outcome.records
      totals["rows skipped and counted"] += outcome.rows_skipped
      outcome = outcome.kind
    counts[outcome] += 1

  t0 = time.time()
  body()
  return {
    "tried": totals["tried"],
    "distinct": len(distinct) if key is not None else None,
    "counts": counts,
    "failures": failures,
    "records": totals["records"],
    "rows_skipped": totals["rows skipped and counted"],
    "seconds": time.time() - t0,
  }


def main(argv):
  del argv
  workdir = tempfile.mkdtemp(prefix="fuzz_campaign_")
  path = os.path.join(workdir, "fuzz.csv")

  def csv_check(oracle):
    def check(case):
      raw, mode = case
      return fz.check_csv(raw, mode, path, *oracle(raw, mode))

    return check

  def structured_check(case):
    s, mode = case
    return fz.check_csv(s.raw, mode, path, s.expect[mode], fz.reference_read(s.raw, mode))

  reference = lambda raw, mode: [fz.reference_read(raw, mode)]
  targets = [
    ("schema", fz.schemas, fz.check_schema, _SCHEMA_EXAMPLES.value, None),
    (
      "CSV, arbitrary bytes",
      st.tuples(fz.arbitrary_bytes, fz.on_bad_rows),
      csv_check(reference),
      _CSV_EXAMPLES.value,
      lambda c: c,
    ),
    (
      "CSV, structured",
      st.tuples(fz.structured_csvs(), fz.on_bad_rows),
      structured_check,
      _CSV_EXAMPLES.value,
      lambda c: (c[0].raw, c[1]),
    ),
    (
      "CSV, mutated",
      st.tuples(fz.mutated_csvs(), fz.on_bad_rows),
      csv_check(reference),
      _CSV_EXAMPLES.value,
      lambda c: c,
    ),
  ]
  results = {}
  for name, strategy, check, n, key in targets:
    results[name] = run_target(strategy, check, n, _SEED.value, key)
    r = results[name]
    print(f"{name}: {r['tried']} inputs in {r['seconds']:.0f} s", flush=True)

  bad = sum(
    c for r in results.values() for k, c in r["counts"].items() if k.startswith(FAILURE_PREFIXES)
  )
  lines = [
    "# Fuzzing campaign: schema parser and CSV loader",
    "",
    f"`python -m experiments.fuzz_campaign --schema_examples={_SCHEMA_EXAMPLES.value} "
    f"--csv_examples={_CSV_EXAMPLES.value} --seed={_SEED.value}` (hypothesis, "
    "experiments/fuzz_strategies.py). Allowed outcomes: records / an accepted schema, or an "
    "error naming the file, line and field (`Class.field` for schemas) that matches the "
    "oracle's prediction. Failures (another exception, or an outcome the oracle does not "
    f"predict): **{bad}**.",
    "",
    "| target | inputs tried | distinct inputs | records returned | data rows skipped and "
    "counted | failures | seconds |",
    "|---|---|---|---|---|---|---|",
  ]
  for name, r in results.items():
    fails = sum(c for k, c in r["counts"].items() if k.startswith(FAILURE_PREFIXES))
    distinct = "–" if r["distinct"] is None else r["distinct"]
    recs = "–" if name == "schema" else r["records"]
    skipped = "–" if name == "schema" else r["rows_skipped"]
    lines.append(
      f"| {name} | {r['tried']} | {distinct} | {recs} | {skipped} | {fails} | {r['seconds']:.0f} |"
    )
  lines += ["", "Outcomes by kind (share of the target's inputs):", ""]
  lines += ["| target | outcome | inputs | share |", "|---|---|---|---|"]
  for name, r in results.items():
    for kind, c in sorted(r["counts"].items(), key=lambda kc: (-kc[1], kc[0])):
      lines.append(f"| {name} | {kind} | {c} | {100 * c / max(r['tried'], 1):.1f} % |")
    for prefix in FAILURE_PREFIXES:  # shown when zero too
      if not any(k.startswith(prefix) for k in r["counts"]):
        lines.append(f"| {name} | {prefix} | 0 | 0.0 % |")
  failures = [(n, f) for n, r in results.items() for f in r["failures"]]
  if failures:
    lines += ["", "First failures:", ""]
    lines += [f"* {n}: `{f}`" for n, f in failures]
  text = "\n".join(lines) + "\n"
  print(text)
  if _OUT.value:
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value, "w") as f:
      f.write(text)
  if bad:
    raise SystemExit(1)


if __name__ == "__main__":
  app.run(main)
