"""OpenAddresses-style CSV -> records of a flat dataclass schema.

Columns map onto dataclass fields by name, case-insensitively; ``columns`` gives explicit
``field -> column`` names where they differ (the Vermont file's ``LON`` is the field ``long``).
String cells are kept exactly as written (zip codes keep leading zeros, runs of spaces inside
street names are kept); float cells must parse as finite numbers. For ``Optional[...]`` fields an
empty cell is None.

Bad input raises `DataError` naming the file, the line and the field. With
``on_bad_row='skip'`` a row with a bad value or the wrong number of cells is skipped instead, and
every skip is counted in the returned `CsvReport` (with the first few line numbers) — nothing is
dropped silently. A missing column, an undecodable file or an empty file is always an error.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import math
import os
from typing import Any

from alala_jax import schema as sc


class DataError(ValueError):
  """Bad input data; the message names the file, the line and the field."""

  def __init__(self, path: str, line: int | None, field: str | None, message: str):
    where = (
      f"{path}"
      + (f", line {line}" if line is not None else "")
      + (f", field {field!r}" if field is not None else "")
    )
    super().__init__(f"{where}: {message}")
    self.path, self.line, self.field = path, line, field


@dataclasses.dataclass
class CsvReport:
  rows_read: int = 0
  rows_skipped: int = 0
  skipped_lines: list[int] = dataclasses.field(default_factory=list)  # first 20 only
  skip_reasons: list[str] = dataclasses.field(default_factory=list)  # first 20 only

  def summary(self) -> str:
    s = f"{self.rows_read} rows read, {self.rows_skipped} skipped"
    if self.rows_skipped:
      s += f" (first: {'; '.join(self.skip_reasons[:3])})"
    return s


def parse_columns(spec: str | dict[str, str] | None) -> dict[str, str]:
  """Parses ``"long=LON,lat=LAT"`` (or a dict) into a field -> column mapping."""
  if not spec:
    return {}
  if isinstance(spec, dict):
    return dict(spec)
  out = {}
  for item in spec.split(","):
    if "=" not in item:
      raise ValueError(f"column mapping {item!r} is not of the form field=COLUMN")
    field, col = item.split("=", 1)
    out[field.strip()] = col.strip()
  return out


def _kind(node: sc.Node) -> Any:
  """'float', 'str', or the allowed values of a Literal[...] field."""
  if isinstance(node, sc.FloatsNode):
    return "float"
  if isinstance(node, sc.CategoryNode) and node.values is not None:
    return frozenset(node.values)
  return "str"


def _flat_fields(root: sc.RecordNode) -> list[tuple[str, Any, bool]]:
  """(field name, kind, optional) for a flat schema; kind as `_kind` gives it."""
  out = []
  leaves = (sc.FloatsNode,) + sc.LEAF_STRINGS
  for c in root.children:
    if isinstance(c, sc.FloatsNode):
      out.extend((n, "float", False) for n in c.names)
    elif isinstance(c, sc.LEAF_STRINGS):
      out.append((c.key, _kind(c), False))
    elif isinstance(c, sc.OptionalNode) and isinstance(c.child, leaves):
      out.append((c.key, _kind(c.child), True))
    else:
      raise sc.SchemaError(
        f"{root.cls.__name__}.{c.key}: CSV loading supports flat records of str, float and "
        "Optional fields only"
      )
  return out


def _line_breaks(raw: bytes) -> int:
  """Line breaks in `raw` as the CSV reader counts them: CR LF, LF or a lone CR."""
  return raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")


def _encoding_error(path: str, raw: bytes) -> DataError | None:
  """The error for the first byte of `raw` that is not UTF-8 (None if all of it is): it names
  the byte, its offset in the file, its line, and the header name of the column whose cell
  holds it (no field in the header row, or in a cell beyond the header's columns)."""
  bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
  try:
    raw[bom:].decode("utf-8")
    return None
  except UnicodeDecodeError as e:
    offset = bom + e.start
  line = _line_breaks(raw[:offset]) + 1
  # which cell: parse the file with every undecodable byte kept as a lone surrogate (U+DC80 to
  # U+DCFF; valid UTF-8 never decodes to one), up to the row that holds the first of them
  text = raw[bom:].decode("utf-8", "surrogateescape")
  reader = csv.reader(io.StringIO(text, newline=""))
  field = None
  try:
    header = next(reader, [])
    if not any("\udc80" <= ch <= "\udcff" for cell in header for ch in cell):
      for row in reader:
        hit = [i for i, cell in enumerate(row) if any("\udc80" <= ch <= "\udcff" for ch in cell)]
        if hit:
          field = (header[hit[0]].strip() or None) if hit[0] < len(header) else None
          break
  except csv.Error:  # a malformed row before the byte: name the line only
    field = None
  return DataError(
    path,
    line,
    field,
    f"not valid UTF-8 (byte {raw[offset]:#04x} at offset {offset}); re-encode the file as UTF-8",
  )


def next_row(reader, path: str) -> list[str] | None:
  """The next row, None at the end; a malformed row is a `DataError` naming its first line."""
  start = reader.line_num + 1
  try:
    return next(reader)
  except StopIteration:
    return None
  except csv.Error as e:
    if "unexpected end of data" in str(e):
      raise DataError(
        path, start, None, "a quoted cell opens in this row and is never closed"
      ) from None
    raise DataError(path, start, None, f"malformed CSV row: {e}") from None


DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _check_header(path: str, header: list[str], fields) -> None:
  """Errors for an ambiguous header: a column named twice (case-insensitively), or a file that
  is not comma-separated (one header column where the schema needs several)."""
  seen: dict[str, int] = {}
  for i, h in enumerate(header):
    key = h.strip().lower()
    if key and key in seen:
      raise DataError(
        path,
        1,
        h.strip(),
        f"the header names column {h.strip()!r} twice (columns {seen[key] + 1} and {i + 1}, "
        "compared case-insensitively): which one holds the field is ambiguous; rename one",
      )
    seen[key] = i
  if len(header) == 1 and len(fields) > 1:
    # the header row's one cell (not text.splitlines()[0]: str.splitlines also ends a line at
    # \x0c, \x1c, \x85, \u2028... where the CSV reader does not)
    counts = {d: header[0].count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    if counts[best] > 0:
      raise DataError(
        path,
        1,
        None,
        f"the header is one column but looks {DELIMITERS[best]}-separated "
        f"({counts[best]} {best!r} in it); the loader reads comma-separated files: convert it, "
        "or read it with pandas and pass the DataFrame to alala_jax.Synthesizer",
      )


def read_csv(
  path: str | os.PathLike,
  cls: type,
  columns: str | dict[str, str] | None = None,
  on_bad_row: str = "error",
  limit: int | None = None,
) -> tuple[list[Any], CsvReport]:
  """Reads a CSV file into dataclass records.

  Args:
    path: CSV file with a header row.
    cls: a flat dataclass (str, float and Optional fields).
    columns: explicit ``field -> column`` names where they differ from the field names.
    on_bad_row: 'error' (default) or 'skip' (count and report bad rows).
    limit: read at most this many data rows.

  Returns:
    ``(records, report)``.

  Raises:
    DataError: naming file, line and field, for a missing column, a ragged row, a non-numeric
      or non-finite float, a value outside a Literal[...] field's values, bytes that are not
      UTF-8, an empty file, a column named twice in the header, two fields reading one
      column, a file that is not comma-separated, or a quoted cell that never closes (naming
      the line where it opens). A row is named by its first line (a quoted cell may span
      several). Nothing else escapes for any file content: tests/test_fuzz.py fuzzes this with
      hypothesis.
  """
  if on_bad_row not in ("error", "skip"):
    raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
  path = os.fspath(path)
  root = sc.parse_schema(cls)
  fields = _flat_fields(root)
  mapping = parse_columns(columns)
  unknown = set(mapping) - {f for f, _, _ in fields}
  if unknown:
    raise ValueError(f"column mapping names fields not in {cls.__name__}: {sorted(unknown)}")

  with open(path, "rb") as f:
    raw = f.read()
  error = _encoding_error(path, raw)
  if error is not None:
    raise error
  text = raw.decode("utf-8-sig")
  # strict: a quoted cell that never closes is an error, not a cell that swallows the file
  reader = csv.reader(io.StringIO(text, newline=""), strict=True)
  header = next_row(reader, path)
  if header is None or not any(h.strip() for h in header):
    raise DataError(path, 1, None, "empty file: expected a header row")
  _check_header(path, header, fields)
  lower = {h.strip().lower(): i for i, h in enumerate(header)}
  index: dict[str, int] = {}
  for name, _, _ in fields:
    col = mapping.get(name, name)
    if col.lower() not in lower:
      raise DataError(
        path,
        1,
        name,
        f"column {col!r} not found in header {header}"
        + ("" if name in mapping else f"; map it with columns='{name}=<COLUMN>'"),
      )
    index[name] = lower[col.lower()]
  readers = {}
  for name, i in index.items():
    if i in readers:
      raise DataError(
        path,
        1,
        name,
        f"fields {readers[i]!r} and {name!r} both read column {header[i].strip()!r}; map one "
        "of them to another column with columns=",
      )
    readers[i] = name

  report = CsvReport()
  records = []
  while True:
    line = reader.line_num + 1  # the row's first line (a quoted cell may span several)
    row = next_row(reader, path)
    if row is None:
      break
    if limit is not None and report.rows_read >= limit:
      break
    if not row:  # blank line: csv yields []; count it, never drop silently
      problem = (None, "blank line")
    elif len(row) != len(header):
      problem = (None, f"ragged row: {len(row)} cells, header has {len(header)}")
    else:
      problem, values = None, {}
      for name, kind, optional in fields:
        cell = row[index[name]]
        if optional and cell == "":
          values[name] = None
        elif kind == "str":
          values[name] = cell
        elif kind != "float":  # a Literal[...] field
          if cell not in kind:
            problem = (name, f"{cell!r} is not one of the field's values {sorted(kind)}")
            break
          values[name] = cell
        else:
          try:
            x = float(cell)
          except ValueError:
            problem = (name, f"not a number: {cell!r}")
            break
          if not math.isfinite(x):
            problem = (name, f"not a finite number: {cell!r}")
            break
          values[name] = x
    if problem is not None:
      if on_bad_row == "error":
        raise DataError(path, line, problem[0], problem[1])
      report.rows_skipped += 1
      if len(report.skipped_lines) < 20:
        report.skipped_lines.append(line)
        report.skip_reasons.append(f"line {line}: {problem[1]}")
      continue
    records.append(cls(**values))
    report.rows_read += 1
  if not records:
    raise DataError(
      path,
      None,
      None,
      "no data rows"
      + (
        f" ({report.rows_skipped} skipped; first: {report.skip_reasons[0]})"
        if report.rows_skipped
        else ""
      ),
    )
  return records, report


def write_csv(path: str | os.PathLike, records: list[Any], cls: type) -> None:
  """Writes flat dataclass records (or dicts) with one column per field."""
  names = [f.name for f in dataclasses.fields(cls)]
  with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(names)
    for r in records:
      d = r if isinstance(r, dict) else dataclasses.asdict(r)
      w.writerow(["" if d[n] is None else d[n] for n in names])
