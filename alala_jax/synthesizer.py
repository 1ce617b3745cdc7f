"""`Synthesizer`: fit a record VAE on a table and sample realistic fake rows from it.

    from alala_jax import Synthesizer

    synth = Synthesizer(steps=3000).fit("addresses.csv")    # or a DataFrame, or dataclasses
    fake = synth.sample(1000)                                # a DataFrame (or records)
    burlington = synth.sample(100, conditions={"city": "BURLINGTON"})
    synth.save("/tmp/addresses_model"); synth = Synthesizer.load("/tmp/addresses_model")

What `fit` does:

* **Schema.** Given dataclass instances, their class is the schema. Given a DataFrame or a CSV
  file without `schema=`, one is inferred and printed (`infer_schema`): a column is `float`
  when every present value is a finite number and at least one is not a whole number; every
  other column is `str` (whole numbers such as house numbers, zip codes or ids stay strings,
  leading zeros kept); a column with missing values (NaN / None; an empty CSV cell of a float
  column) is `Optional[...]`. Pass `schema=` (a dataclass) to override.
* **Model and training.** The library's record recipe (README main job): the paper 000 record
  VAE, Tuple scheduled sampling + String teacher forcing, trained with GECO (reconstruction
  loss <= `recon_tolerance`), low-cardinality string fields as categories
  (`data.categorical='auto'`, printed), generation from the aggregate posterior at
  temperature 0.5 refitted on the final model. A tqdm progress bar shows the training; the
  run's workdir (checkpoints, metrics.jsonl, spec) is `workdir=` or a temporary directory.
  `config=` replaces the whole recipe (an `alala_jax.config.base_config()`-shaped ConfigDict).
* **Conditions** (`sample(n, conditions=...)`): generation by inference, never rejection
  (`alala_jax.conditional`): every returned row satisfies its condition.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import tempfile
import typing
from typing import Any, Mapping, Optional, Sequence

import jax

from alala_jax import conditional, generate
from alala_jax import config as base_config
from alala_jax import schema as sc
from alala_jax.data import codec, csv_io, datasets
from alala_jax.data.csv_io import DataError
from alala_jax.tasks import records as records_task
from alala_jax.train import loop

SCHEMA_FILE = "schema.json"


def _is_missing(v: Any) -> bool:
  return v is None or (isinstance(v, float) and math.isnan(v))


def _as_float(v: Any) -> float | None:
  """The finite float a cell holds, or None."""
  if isinstance(v, bool):
    return None
  if isinstance(v, (int, float)) or type(v).__module__ == "numpy":
    try:
      x = float(v)
    except (TypeError, ValueError):
      return None
    return x if math.isfinite(x) else None
  if isinstance(v, str):
    try:
      x = float(v.strip())
    except ValueError:
      return None
    return x if math.isfinite(x) and v.strip() else None
  return None


def _whole(v: Any) -> bool:
  if isinstance(v, str):
    s = v.strip().lstrip("+-")
    return s.isdigit()
  return float(v).is_integer()


def infer_schema(
  rows: Sequence[Mapping[str, Any]],
  columns: Sequence[str],
  name: str = "Record",
  empty_is_missing: bool = False,
) -> type:
  """A flat dataclass for `rows` (dicts over `columns`; rules in the module docstring).

  Args:
    rows: the table's rows.
    columns: the column names, in order; each must be a Python identifier.
    name: the dataclass's name.
    empty_is_missing: whether an empty string is a missing value in a float column (CSV).

  Raises:
    ValueError: naming the column, for a name that is not an identifier or appears twice.
  """
  seen: set[str] = set()
  fields = []
  for col in columns:
    if not str(col).isidentifier():
      raise ValueError(f"column {col!r} is not a Python identifier: rename it")
    if col in seen:
      raise ValueError(f"column {col!r} appears twice")
    seen.add(col)
    values = [r.get(col) for r in rows]
    present = [v for v in values if not _is_missing(v)]
    numbers = [v for v in present if not (empty_is_missing and v == "")]
    is_float = bool(numbers) and all(_as_float(v) is not None for v in numbers)
    is_float = is_float and not all(_whole(v) for v in numbers)
    missing = len(present) < len(values) or (is_float and len(numbers) < len(present))
    tp: Any = float if is_float else str
    fields.append((col, Optional[tp] if missing else tp))
  return dataclasses.make_dataclass(name, fields)


def schema_source(cls: type) -> str:
  """The dataclass's source as a user would write it (printed by `fit`)."""
  hints = typing.get_type_hints(cls)
  lines = ["@dataclasses.dataclass", f"class {cls.__name__}:"]
  for f in dataclasses.fields(cls):
    tp = hints[f.name]
    inner = sc._unwrap_optional(tp)
    text = f"Optional[{inner.__name__}]" if inner is not None else getattr(tp, "__name__", str(tp))
    lines.append(f"  {f.name}: {text}")
  return "\n".join(lines)


def _schema_to_json(cls: type) -> dict:
  hints = typing.get_type_hints(cls)
  out = []
  for f in dataclasses.fields(cls):
    tp = hints[f.name]
    inner = sc._unwrap_optional(tp)
    base = inner if inner is not None else tp
    if typing.get_origin(base) is typing.Literal:
      out.append({"name": f.name, "type": "literal", "values": list(typing.get_args(base))})
      out[-1]["optional"] = inner is not None
      continue
    if base not in (str, float):
      raise sc.SchemaError(
        f"{cls.__name__}.{f.name}: the Synthesizer takes flat schemas of str, float, "
        f"Literal[...] and Optional[...] fields, not {base!r}"
      )
    out.append({"name": f.name, "type": base.__name__, "optional": inner is not None})
  return {"name": cls.__name__, "fields": out}


def _schema_from_json(d: dict) -> type:
  fields = []
  for f in d["fields"]:
    if f["type"] == "literal":
      tp = typing.Literal[tuple(f["values"])]
    else:
      tp = {"str": str, "float": float}[f["type"]]
    fields.append((f["name"], Optional[tp] if f["optional"] else tp))
  return dataclasses.make_dataclass(d["name"], fields)


def _as_str(v: Any) -> str:
  """A cell of a str column as the string the model sees (whole numbers without '.0')."""
  if isinstance(v, str):
    return v
  if isinstance(v, bool):
    return str(v)
  return str(int(v)) if _whole(v) else str(v)


def _records(
  rows: Sequence[Mapping[str, Any]], cls: type, source: str, lines: Sequence[int] | None = None
) -> list[Any]:
  """Rows -> dataclass instances of a flat schema; a bad cell raises `DataError` naming the
  field and the row's file line (`lines`, for a CSV) or its row index (a DataFrame)."""
  hints = typing.get_type_hints(cls)
  out = []

  def error(i, field, message):
    if lines is not None:
      return DataError(source, lines[i], field, message)
    return DataError(source, None, field, f"row {i}: {message}")

  for i, r in enumerate(rows):
    vals = {}
    for f in dataclasses.fields(cls):
      tp = hints[f.name]
      inner = sc._unwrap_optional(tp)
      base = inner if inner is not None else tp
      v = r.get(f.name)
      if _is_missing(v) or (base is float and v == ""):
        if inner is None:
          raise error(i, f.name, "missing value in a field that is not Optional")
        vals[f.name] = None
      elif base is float:
        x = _as_float(v)
        if x is None:
          raise error(i, f.name, f"not a finite number: {v!r}")
        vals[f.name] = x
      elif base is str or typing.get_origin(base) is typing.Literal:
        vals[f.name] = _as_str(v)
      else:
        raise sc.SchemaError(f"{cls.__name__}.{f.name}: the Synthesizer takes flat schemas")
    out.append(cls(**vals))
  return out


def _read_table(data: Any) -> tuple[list[dict], list[str], str, list[int] | None, bool]:
  """(rows, columns, source name, the rows' file lines (None for a DataFrame), whether empty
  cells are missing floats)."""
  if isinstance(data, (str, os.PathLike)):
    path = os.fspath(data)
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f, strict=True)  # an unclosed quote is an error naming its line
      header = csv_io.next_row(reader, path)
      if not header:
        raise DataError(path, 1, None, "empty file: expected a header row")
      header = [h.strip() for h in header]
      rows, lines = [], []
      while (row := csv_io.next_row(reader, path)) is not None:
        if len(row) != len(header):
          raise DataError(
            path, reader.line_num, None, f"{len(row)} cells, the header has {len(header)}"
          )
        rows.append(dict(zip(header, row)))
        lines.append(reader.line_num)
    return rows, header, path, lines, True
  if type(data).__name__ == "DataFrame":
    rows = data.to_dict("records")
    return rows, [str(c) for c in data.columns], "DataFrame", None, False
  raise TypeError(
    f"fit() takes a pandas DataFrame, a CSV path or a list of dataclass instances, got "
    f"{type(data).__name__}"
  )


def default_config(steps: int = 3000, seed: int = 0, recon_tolerance: float = 0.1):
  """The Synthesizer's recipe (module docstring) as a ConfigDict."""
  c = base_config.base_config()
  c.seed = seed
  c.objective.tuple_scheme, c.objective.string_scheme = "SS", "TF"
  c.objective.ss_fraction = 1.0
  c.objective.name = "geco"
  c.objective.geco.constraints = f"loss<={recon_tolerance}"
  c.objective.geco.lambda_init = 100.0
  c.objective.geco.nu = 0.05
  c.model.latent_dim = 64
  c.optim.learning_rate = 1e-3
  c.train.num_steps = steps
  c.train.batch_size = 128
  c.train.log_every = max(1, min(100, steps // 20))
  c.train.eval_every = 0  # no periodic test / generated loss: fit ends with the prior fit
  c.train.checkpoint_every = max(1, steps // 3)
  c.data.categorical = "auto"
  c.eval.generation_prior = "aggregate"
  return c


def _fit_eval_fields(config, cls: type) -> None:
  """Turn off the evaluation fields (zip, coordinates, pairs, street) the schema lacks."""
  names = {f.name for f in dataclasses.fields(cls)}
  ec = config.eval
  coords = [f.strip() for f in ec.coord_fields.split(",")]
  if ec.zip_field not in names or not set(coords) <= names:
    ec.zip_field = ""
  if ec.lev_field not in names:
    ec.lev_field = ""
  if not {f.strip() for f in ec.pair_fields.split(",") if f.strip()} <= names:
    ec.pair_fields = ""


class Synthesizer:
  """Fit / sample / save / load around the record VAE (module docstring)."""

  def __init__(
    self,
    steps: int = 3000,
    *,
    config=None,
    workdir: str | None = None,
    seed: int = 0,
    test_fraction: float | None = None,
    verbose: bool = True,
  ):
    self.config = config if config is not None else default_config(steps, seed)
    if test_fraction is not None:
      self.config.data.test_fraction = test_fraction
    self.workdir = self._user_workdir = workdir
    self.verbose = verbose
    self.task = self.state = self.prior = None
    self.schema: type | None = None
    self._frame = False

  def _log(self, s: str) -> None:
    if self.verbose:
      print(s)

  # --- fitting ---
  def fit(self, data: Any, schema: type | None = None) -> "Synthesizer":
    """Trains on `data`: a pandas DataFrame, a CSV path or a list of dataclass instances."""
    if isinstance(data, (list, tuple)) and data and dataclasses.is_dataclass(data[0]):
      cls, records, source = schema or type(data[0]), list(data), "records"
    else:
      rows, columns, source, lines, empty_missing = _read_table(data)
      self._frame = lines is None
      if not rows:
        raise DataError(source, None, None, "no data rows")
      if schema is None:
        schema = infer_schema(rows, columns, empty_is_missing=empty_missing)
        self._log("inferred schema (pass schema= to override):\n" + schema_source(schema))
      cls, records = schema, _records(rows, schema, source, lines)
    self.schema = cls
    schema_json = _schema_to_json(cls)  # before training: a schema it cannot save is an error now
    config = self.config
    _fit_eval_fields(config, cls)
    train, test = datasets.split(records, config.data.test_fraction, config.data.split_seed)
    names, note = records_task.categorical_fields(config.data, cls, train)
    root = sc.parse_schema(cls, names)
    spec = codec.build_spec(root, train)
    data_set = datasets.Dataset(cls, train, test, source, f"{len(records)} records; {note}")
    self.task = records_task.RecordTask(config, root, spec, data_set)
    if self._user_workdir is not None:
      ckpt = os.path.join(self._user_workdir, "checkpoints")
      if os.path.isdir(ckpt) and os.listdir(ckpt):
        raise FileExistsError(
          f"{self._user_workdir} holds a trained run: fit() would resume it instead of "
          "training on this data; give a new workdir (or Synthesizer.load it)"
        )
      self.workdir = self._user_workdir
    else:
      self.workdir = tempfile.mkdtemp(prefix="alala_synth_")  # a fresh one for every fit
    self.state, _ = loop.train(config, self.workdir, self.task, log=self._log)
    self.prior = self.task.fit_generation_prior(self.state, config)
    self.task.save_final(self.workdir)
    with open(os.path.join(self.workdir, SCHEMA_FILE), "w") as f:
      json.dump({**schema_json, "frame": self._frame}, f, indent=1)
    return self

  def _condition_values(self, cond: Mapping[str, Any]) -> dict[str, Any]:
    """Condition values converted as `fit` converted the training cells (a zip given as the
    int 5301 in a str column is the string '5301')."""
    hints = typing.get_type_hints(self.schema)
    out = {}
    for k, v in cond.items():
      tp = hints.get(k)
      base = sc._unwrap_optional(tp) or tp
      out[k] = _as_str(v) if base is str and v is not None and not isinstance(v, str) else v
    return out

  @property
  def _temperature(self) -> float:
    return float(self.config.eval.prior_temperature)

  def _check_fitted(self) -> None:
    if self.state is None:
      raise RuntimeError("call fit() (or Synthesizer.load) first")

  # --- sampling ---
  def sample(
    self,
    n: int | None = None,
    conditions: Any = None,
    *,
    seed: int = 0,
    as_frame: bool | None = None,
    candidates: int = 4096,
    svi_steps: int = 0,
  ):
    """`n` generated rows; with `conditions` ({column: value} for all n rows, or a DataFrame /
    list of dicts of partial rows, one output row each; NaN / None cells are free) every row
    satisfies its condition (generation by inference: importance sampling over `candidates`
    latents, then `svi_steps` steps of SVI per row if > 0, so that rows of a rare condition do
    not share latents; ~10x slower). Returns a DataFrame when fitted on one (or `as_frame`),
    else dataclass records."""
    self._check_fitted()
    key = jax.random.key(seed)
    chunk = self.config.eval.chunk
    if conditions is None:
      if n is None:
        raise ValueError("give n")
      recs = generate.generate_records(
        self.task,
        self.state,
        n,
        key,
        chunk,
        prior=self.prior,
        temperature=self._temperature,
      )
    else:
      if type(conditions).__name__ == "DataFrame":
        conditions = conditions.to_dict("records")
      if isinstance(conditions, Mapping):
        conditions = self._condition_values(conditions)
      else:
        conditions = [
          self._condition_values({k: v for k, v in c.items() if not _is_missing(v)})
          for c in conditions
        ]
      recs, report = conditional.sample(
        self.task,
        self.state,
        conditions,
        key,
        n=n,
        prior=self.prior,
        temperature=self._temperature,
        candidates=candidates,
        chunk=min(chunk, 512),
        svi=dataclasses.replace(conditional.DEFAULT_SVI, steps=svi_steps) if svi_steps else None,
      )
      self.last_conditional_report = report
    if as_frame if as_frame is not None else self._frame:
      import pandas as pd

      return pd.DataFrame([dataclasses.asdict(r) for r in recs])
    return recs

  def report(self, out_dir: str, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The quality report (`alala_jax.report.quality_report`: p-value histogram, map, per-field
    marginals, privacy lines) of `n` generated records against the training data, written to
    `out_dir`; returns its dict (``res['html']`` is the page)."""
    from alala_jax import report as report_lib

    self._check_fitted()
    if self.task.data is None:
      raise RuntimeError("the report needs the training data: it is available after fit()")
    gen = self.sample(n, seed=seed, as_frame=False)
    return report_lib.quality_report(
      self.task.data.train, self.task.data.test, gen, self.config, out_dir, title="Synthesizer"
    )

  # --- persistence ---
  def save(self, path: str) -> None:
    """Copies the run (checkpoints, spec, config, schema, generation prior) to `path`."""
    self._check_fitted()
    if os.path.abspath(path) != os.path.abspath(self.workdir):
      shutil.copytree(self.workdir, path, dirs_exist_ok=True)

  @classmethod
  def load(cls, path: str, verbose: bool = True) -> "Synthesizer":
    """A fitted Synthesizer from a directory written by `fit` (its workdir) or `save`."""
    from alala_jax import cli

    schema_path = os.path.join(path, SCHEMA_FILE)
    if not os.path.exists(schema_path):
      raise FileNotFoundError(f"no {SCHEMA_FILE} in {path}: not a saved Synthesizer")
    with open(schema_path) as f:
      d = json.load(f)
    config = cli.load_workdir_config(path)
    self = cls(config=config, workdir=path, verbose=verbose)
    self.schema, self._frame = _schema_from_json(d), bool(d.get("frame"))
    spec = records_task.read_spec(path)
    root = sc.parse_schema(self.schema, spec.categories)
    self.task = records_task.RecordTask(config, root, spec)
    template = self.task.trainer.create_state(
      config.seed, self.task.example_batch(config.train.batch_size)
    )
    self.state = loop.restore_state(path, config, template)
    self.prior, temperature, _ = records_task.load_run_prior(
      path, int(self.state.step), config.eval.prior_temperature
    )
    self.config.eval.prior_temperature = temperature
    return self
