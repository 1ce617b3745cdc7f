"""Loading the configured data set and the deterministic train/test split."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import numpy as np

from alala_jax.data import csv_io, synthetic, text_format


def import_schema(spec: str) -> type:
  """'module:ClassName' -> the dataclass type."""
  if ":" not in spec:
    raise ValueError(f"schema {spec!r} must be 'module:ClassName'")
  mod, name = spec.split(":", 1)
  try:
    return getattr(importlib.import_module(mod), name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"cannot import schema {spec!r}: {e}") from e


@dataclasses.dataclass
class Dataset:
  cls: type
  train: list[Any]
  test: list[Any]
  source: str
  notes: str  # what loading did (rows read, skipped, ...)
  text: text_format.TextFormat | None = None  # records are CsvText lines of this format


def model_cls(data_cfg) -> type:
  """The record type the model is built for: the schema, or `CsvText` (data.format 'text')."""
  cls = import_schema(data_cfg.schema)
  return text_format.CsvText if text_format.from_config(data_cfg, cls) else cls


def split(records: list[Any], test_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
  """Deterministic shuffle-split: the same seed gives the same split."""
  perm = np.random.default_rng(seed).permutation(len(records))
  n_test = int(round(test_fraction * len(records)))
  return [records[i] for i in perm[n_test:]], [records[i] for i in perm[:n_test]]


def load(data_cfg) -> Dataset:
  """Loads the data set described by `config.data`."""
  cls = import_schema(data_cfg.schema)
  if data_cfg.csv:
    records, report = csv_io.read_csv(
      data_cfg.csv, cls, data_cfg.columns, data_cfg.on_bad_row, data_cfg.limit or None
    )
    source, notes = data_cfg.csv, report.summary()
  else:
    if cls.__name__ != "Address":
      raise ValueError(
        "the embedded synthetic data set is for the Address schema; "
        "set config.data.csv for other schemas"
      )
    records = synthetic.synthetic_addresses(
      data_cfg.num_synthetic, data_cfg.num_zips, data_cfg.split_seed
    )
    source = f"synthetic(n={data_cfg.num_synthetic}, zips={data_cfg.num_zips})"
    notes = f"{len(records)} synthetic records"
  fmt = text_format.from_config(data_cfg, cls)
  if fmt is not None:  # App F: each record becomes one comma-separated line
    records, cls = fmt.to_texts(records), text_format.CsvText
    notes += f"; as comma-separated text ({','.join(fmt.fields)}, {fmt.decimals} decimals)"
  train, test = split(records, data_cfg.test_fraction, data_cfg.split_seed)
  return Dataset(cls, train, test, source, notes, fmt)
