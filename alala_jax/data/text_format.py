"""The comma-separated text view of a record (paper 000 App F).

The App F baseline models each address as ONE string, "number,street,city,postcode,lat,long"
(the always-empty fields omitted, coordinates rounded to 5 decimals), with a single
StringLiteral and the sigma-network (the model of a one-field record, `nn.tree.Single`). A
generated line is parsed back into a record; it is *malformed* when it has fewer comma-separated
values than fields, or its float fields are not valid input for Python's ``float()`` — the paper
then scores its p-value as 0 and reports the malformed count.

Parsing follows the paper's wording: the string fields are the first values from the left, the
float fields "the last two values" from the right; a line with more values than fields keeps
its extra middle values out of every field (the paper does not say; Vermont values contain no
commas, and `to_text` refuses values that do).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

ENABLED = "text"


@dataclasses.dataclass
class CsvText:
  """A record as one comma-separated line."""

  text: str


@dataclasses.dataclass(frozen=True)
class TextFormat:
  """Converts records of `cls` to `CsvText` and back (fields in `fields` order)."""

  cls: type
  fields: tuple[str, ...]
  decimals: int = 5

  def __post_init__(self):
    types = {f.name: f.type for f in dataclasses.fields(self.cls)}
    unknown = [f for f in self.fields if f not in types]
    if unknown:
      raise ValueError(
        f"data.text_fields names {unknown}, not fields of {self.cls.__name__} ({list(types)})"
      )
    omitted = [n for n, t in types.items() if n not in self.fields and t not in (str, "str")]
    if omitted:
      raise ValueError(
        f"data.text_fields omits the non-string fields {omitted} of "
        f"{self.cls.__name__}; only string fields can be left out (as '')"
      )
    self._floats()  # validates the float fields' position

  def _is_float(self, name: str) -> bool:
    return self._float_fields[self.fields.index(name)]

  @functools.cached_property
  def _float_fields(self) -> tuple[bool, ...]:
    types = {f.name: f.type for f in dataclasses.fields(self.cls)}
    return tuple(types[f] in (float, "float") for f in self.fields)

  @functools.cached_property
  def _first_float(self) -> int:
    return self._floats()

  def _floats(self) -> int:
    """Index of the first float field; float fields must come last (App F: lat, long)."""
    kinds = list(self._float_fields)
    first = kinds.index(True) if True in kinds else len(kinds)
    if not all(kinds[first:]):
      raise ValueError(f"data.text_fields {self.fields}: the float fields must come last")
    return first

  def to_text(self, record: Any, index: int = 0) -> CsvText:
    parts = []
    for f in self.fields:
      v = getattr(record, f)
      if self._is_float(f):
        parts.append(f"{v:.{self.decimals}f}")
      else:
        if "," in v:
          raise ValueError(
            f"record {index}: field {f!r} value {v!r} contains ',', which the "
            "comma-separated text format cannot represent"
          )
        parts.append(v)
    return CsvText(",".join(parts))

  def to_texts(self, records: Sequence[Any]) -> list[CsvText]:
    return [self.to_text(r, i) for i, r in enumerate(records)]

  def parse(self, line: CsvText | str) -> Any | None:
    """The record a line encodes, or None if it is malformed (module docstring)."""
    text = line.text if isinstance(line, CsvText) else line
    parts = text.split(",")
    n, first = len(self.fields), self._first_float
    if len(parts) < n:
      return None
    values = parts[:first] + parts[len(parts) - (n - first) :]
    kw = {}
    for f, v in zip(self.fields, values):
      if self._is_float(f):
        try:
          kw[f] = float(v)
        except ValueError:
          return None
      else:
        kw[f] = v
    for f in dataclasses.fields(self.cls):
      kw.setdefault(f.name, "")
    return self.cls(**kw)


def from_config(data_cfg, cls: type) -> TextFormat | None:
  """The text format of `config.data` (None unless data.format is 'text')."""
  fmt = data_cfg.get("format", "fields")
  if fmt == "fields":
    return None
  if fmt != ENABLED:
    raise ValueError(f"unknown data.format {fmt!r}: expected 'fields' or 'text'")
  return TextFormat(
    cls, tuple(f.strip() for f in data_cfg.text_fields.split(",")), int(data_cfg.text_decimals)
  )
