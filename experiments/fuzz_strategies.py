"""Hypothesis strategies and oracles for fuzzing the schema parser and the CSV loader (issue #16).

The one place both users take them from: tests/test_fuzz.py runs each property for a few hundred
examples in CI, experiments/fuzz_campaign.py for thousands, and counts the outcomes by kind.

The allowed outcomes are records (a parsed schema), or an error that names where: a `SchemaError`
whose message starts with ``Class.field:`` (``Class:`` for a problem of the whole class), a
`DataError` whose message starts with ``path, line N, field 'f':`` (no field for a problem of a
whole row or file; no line only for "no data rows"). Anything else is a failure: another exception
type, a wrong place, or records that differ from what the input holds.

Each input comes with what its outcome must be:

* schemas: the strategy builds each annotation together with a small spec of what it is (`Leaf`,
  `Opt`, `Lst`, `Rec`, `Ref` to an enclosing record, `Bad` with the error it must raise) and
  `expect_schema` derives the outcome from the spec alone: which field (first in field order,
  depth first) fails and why, or the node tree an accepted schema must parse into;
* structured CSV files: the strategy writes the file itself, so it knows every row's first line,
  its cells and whether each is valid, and derives the records, the skipped lines or the error;
* arbitrary and mutated CSV bytes: `reference_read`, a plain reading of the loader's documented
  rules on top of Python's csv module (strict mode), predicts the outcome.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import keyword
import math
import os
import re
import typing
from typing import Any, Literal, Optional, Union

from hypothesis import assume
from hypothesis import strategies as st

from alala_jax import schema as sc
from alala_jax.data import csv_io

# ------------------------------------------------------------------------------------------------
# Schema fuzzing
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Leaf:
  """A supported leaf: 'str', 'float' or 'cat' (a Literal of strings, with its values)."""

  kind: str
  values: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Opt:
  child: Any


@dataclasses.dataclass(frozen=True)
class Lst:
  child: Any


@dataclasses.dataclass(frozen=True)
class Bad:
  """An annotation the parser must reject; `category` is the SchemaError kind it must raise."""

  category: str


@dataclasses.dataclass(frozen=True)
class Ref:
  """A record type that encloses this field (the tree would be infinite)."""

  cls: type


@dataclasses.dataclass(eq=False)
class Rec:
  """A generated dataclass and the specs of its fields (a list: `recursive` patches it)."""

  cls: type
  fields: list[tuple[str, Any]]


@dataclasses.dataclass(frozen=True)
class NotDataclass:
  """A non-dataclass input (`obj`, not shown: its repr may fail); `name` must appear in the
  error, of kind `kind`."""

  obj: Any = dataclasses.field(repr=False)
  name: str = ""
  kind: str = "not a dataclass"


# SchemaError kinds, by the start of the message after "Class.field: " (or "Class: ").
SCHEMA_ERRORS = (
  ("unsupported annotation", r"unsupported annotation"),
  ("Literal of non-strings", r"Literal\[\.\.\.\] fields must list string values"),
  ("list without element type", r"list needs an element type"),
  ("list of several element types", r".* has \d+ element types; a list takes one"),
  ("list of list or Optional", r"list of (ListNode|OptionalNode) is not supported"),
  ("nested Optional", r"nested Optional"),
  ("unresolvable annotation", r"cannot resolve annotation"),
  ("recursive record", r"recursive record type"),
  ("reserved field name", r"field name is reserved"),
  ("record without fields", r"a record needs at least one field"),
  ("dataclass instance", r"got an instance of the dataclass"),
  ("categorical", r".*categorical"),
)


def schema_error_kind(message: str) -> str:
  """The kind of a SchemaError message (the campaign's row), 'unclassified' if none fits."""
  if message.endswith(" is not a dataclass type"):
    return "not a dataclass"
  rest = message.split(": ", 1)[1] if ": " in message else message
  for kind, pattern in SCHEMA_ERRORS:
    if re.match(pattern, rest, re.S):
      return kind
  return "unclassified"


class _BadRepr:
  def __repr__(self):
    raise RuntimeError("repr fails")


class _Annotated:
  """A plain class with annotations: not a dataclass."""

  a: str


# Annotations the parser must reject as unsupported. NESTABLE ones may also appear inside
# Optional[...] / list[...]; TOP_ONLY ones cannot (typing refuses e.g. Optional[Final[str]]).
_NESTABLE_UNSUPPORTED = [
  int,
  bool,
  bytes,
  complex,
  object,
  type,
  dict,
  dict[str, str],
  typing.Dict[str, float],
  tuple[str, ...],
  tuple[str, float],
  set,
  set[str],
  frozenset[str],
  typing.Sequence[str],
  typing.Any,
  type(None),
  None,
  Union[str, float],
  Union[str, float, None],
  str | int,
  typing.NewType("Zip", str),
  typing.TypeVar("T"),
  type("MyStr", (str,), {}),
  _Annotated,
]
_TOP_ONLY_UNSUPPORTED = [typing.Final[str], Literal, 3, "3", "None"]
_BAD_LITERALS = [
  Literal["a", 1],
  Literal[1],
  Literal[None],
  Literal[b"a"],
  Literal[True, "x"],
  Literal["ok", 2.5],
]
_UNRESOLVABLE_NESTABLE = ["Undefined", "__nope__.x", "Address"]
_UNRESOLVABLE_TOP_ONLY = ["int x", "1 +", "list[", "str()"]

_NAME_POOL = [
  "a",
  "name",
  "x",
  "lat",
  "long",
  "_private",
  "self",
  "str",
  "float",
  "list",
  "Optional",
  "ñame",
  "名前",
  "field",
  "cls",
  "MISSING",
  "_",
  "x" * 40,
]
_RESERVED = sc.FLOATS_KEY


def _usable_name(name: str) -> bool:
  return (
    name.isidentifier()
    and not keyword.iskeyword(name)
    and not (name.startswith("__") and name.endswith("__") and name != _RESERVED)
  )


field_names = st.one_of(
  st.sampled_from(_NAME_POOL + [_RESERVED]),
  st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,7}\Z"),
).filter(_usable_name)
class_names = st.one_of(
  st.sampled_from(["C", "Address", "Inner", "Ünïcode", "_Private", "str", "Rec"]),
  st.from_regex(r"\A[A-Z][a-zA-Z0-9_]{0,7}\Z"),
)
literal_values = st.lists(
  st.text(st.characters(codec="utf-8"), max_size=4), min_size=1, max_size=4, unique=True
)

MAX_DEPTH = 3


@st.composite
def records(draw, depth: int = 0, min_fields: int = 1):
  """(dataclass, Rec): a generated dataclass of 0..5 fields with annotations from `annotations`."""
  n = draw(st.integers(min_fields, 5 if depth == 0 else 3))
  names = draw(st.lists(field_names, min_size=n, max_size=n, unique=True))
  fields = [(name, draw(annotations(depth, top=True))) for name in names]
  try:
    cls = dataclasses.make_dataclass(draw(class_names), [(n, a) for n, (a, _) in fields])
  except (TypeError, ValueError, SyntaxError):  # a field name make_dataclass refuses
    assume(False)
  return cls, Rec(cls, [(n, s) for n, (_, s) in fields])


@st.composite
def annotations(draw, depth: int = 0, top: bool = False):
  """(annotation, spec) for one field; nested dataclasses up to `MAX_DEPTH` deep."""
  # one annotation in ten is one the parser rejects (more, and few schemas would be accepted);
  # rare choices are a value inside the range: hypothesis draws the ends of a range more often
  if draw(st.integers(0, 9)) == 5:
    kinds = ["unsupported", "unsupported", "bad-literal", "unresolvable", "bare list"]
    kinds += ["multi list"] + (["empty record"] if depth < MAX_DEPTH else [])
  else:
    kinds = ["str", "str", "float", "float", "string-form", "annotated", "literal", "literal"]
    if depth < MAX_DEPTH:
      kinds += ["optional", "optional", "nested optional", "list", "list", "record"]
      kinds += ["optional record", "list of record"]
  kind = draw(st.sampled_from(kinds))
  if kind == "str":
    return str, Leaf("str")
  if kind == "float":
    return float, Leaf("float")
  if kind == "string-form":  # a string annotation that resolves
    s = draw(st.sampled_from(["str", "float"]))
    return s, Leaf(s)
  if kind == "annotated":
    tp = draw(st.sampled_from([str, float]))
    return typing.Annotated[tp, "meta"], Leaf(tp.__name__)
  if kind == "literal":
    values = tuple(draw(literal_values))
    return Literal[values], Leaf("cat", values)
  if kind == "bad-literal":
    return draw(st.sampled_from(_BAD_LITERALS)), Bad("Literal of non-strings")
  if kind == "unsupported":
    pool = _NESTABLE_UNSUPPORTED + (_TOP_ONLY_UNSUPPORTED if top else [])
    return draw(st.sampled_from(pool)), Bad("unsupported annotation")
  if kind == "unresolvable":
    pool = _UNRESOLVABLE_NESTABLE + (_UNRESOLVABLE_TOP_ONLY if top else [])
    return draw(st.sampled_from(pool)), Bad("unresolvable annotation")
  if kind == "bare list":
    return draw(st.sampled_from([list, typing.List])), Bad("list without element type")
  if kind == "multi list":
    return draw(st.sampled_from([list[str, float], list[int, str]])), Bad(
      "list of several element types"
    )
  if kind in ("optional", "nested optional", "optional record"):
    if kind == "optional record":
      a, s = draw(records(depth + 1))
    else:
      a, s = draw(annotations(depth + 1))
    if kind == "nested optional" or draw(st.booleans()):
      tp = Optional[Optional[a]]  # typing flattens it to Optional[a]
    else:
      tp = Optional[a]
    if isinstance(s, Opt):
      return tp, s
    return tp, Opt(s)
  if kind in ("list", "list of record"):
    a, s = draw(records(depth + 1) if kind == "list of record" else annotations(depth + 1))
    if isinstance(a, str):  # typing.List["x"] is a ForwardRef like list["x"]
      return list[a], Lst(s)
    return draw(st.sampled_from([list[a], typing.List[a]])), Lst(s)
  if kind == "record":
    return draw(records(depth + 1))
  assert kind == "empty record"
  return draw(records(depth + 1, min_fields=0))


def _walk_records(spec, chain=()):
  """(Rec, its enclosing records outermost first) for every record in a spec tree."""
  if isinstance(spec, Rec):
    yield spec, chain
    for _, s in spec.fields:
      yield from _walk_records(s, chain + (spec,))
  elif isinstance(spec, (Opt, Lst)):
    yield from _walk_records(spec.child, chain)


@st.composite
def recursive(draw, base):
  """Patches one field of one record in `base` to refer to that record or an enclosing one."""
  cls, rec = draw(base)
  candidates = [(r, chain) for r, chain in _walk_records(rec) if r.fields]
  r, chain = draw(st.sampled_from(candidates))
  target = draw(st.sampled_from(list(chain) + [r]))
  i = draw(st.integers(0, len(r.fields) - 1))
  name = r.fields[i][0]
  wrap = draw(st.sampled_from(["plain", "optional", "list"]))
  tp = {"plain": target.cls, "optional": Optional[target.cls], "list": list[target.cls]}[wrap]
  spec = {"plain": Ref(target.cls), "optional": Opt(Ref(target.cls)), "list": Lst(Ref(target.cls))}
  r.cls.__annotations__[name] = tp
  r.cls.__dataclass_fields__[name].type = tp
  r.fields[i] = (name, spec[wrap])
  return cls, rec


non_dataclasses = st.sampled_from(
  [  # (make the input, a name its error must show, the error's kind)
    (lambda: int, "int"),
    (lambda: str, "str"),
    (lambda: None, "None"),
    (lambda: 3, "3"),
    (lambda: "Address", "'Address'"),
    (lambda: list[str], "list[str]"),
    (lambda: Optional[sc.Address], "Optional"),
    (lambda: sc.Address(1.0, 2.0, *"abcdefg"), "Address", "dataclass instance"),
    (lambda: _Annotated, "_Annotated"),
    (lambda: typing.Any, "Any"),
    (lambda: len, "len"),
    (lambda: _BadRepr(), "_BadRepr"),  # made at draw time: hypothesis shows its strategies
    (lambda: os, "module 'os'"),
    (lambda: dataclasses.dataclass, "dataclass"),
  ]
).map(lambda p: (None, NotDataclass(p[0](), *p[1:])))

schemas = st.integers(0, 7).flatmap(
  lambda i: recursive(records()) if i == 3 else non_dataclasses if i == 5 else records()
)
"""(input, spec): a generated dataclass with its `Rec`, or a non-dataclass with `NotDataclass`."""


def _is_float_field(spec) -> bool:
  return isinstance(spec, Leaf) and spec.kind == "float"


def _shallow_unresolvable(spec) -> bool:
  """Whether evaluating this field's own annotation fails (nested records resolve later)."""
  if isinstance(spec, Bad):
    return spec.category == "unresolvable annotation"
  if isinstance(spec, (Opt, Lst)):
    return _shallow_unresolvable(spec.child)
  return False


def _expect_record(rec: Rec, stack: tuple[type, ...]):
  name = rec.cls.__name__
  for field, s in rec.fields:
    if _shallow_unresolvable(s):
      return f"{name}.{field}", "unresolvable annotation"
  if not rec.fields:
    return name, "record without fields"
  stack = stack + (rec.cls,)
  for field, s in rec.fields:
    if field == _RESERVED:
      return f"{name}.{field}", "reserved field name"
    if _is_float_field(s):
      continue
    err = _expect_type(s, name, field, stack)
    if err is not None:
      return err
  return None


def _expect_type(spec, owner: str, field: str, stack: tuple[type, ...]):
  where = f"{owner}.{field}"
  if isinstance(spec, Leaf):
    return None
  if isinstance(spec, Bad):
    return where, spec.category
  if isinstance(spec, Ref):
    assert spec.cls in stack
    return where, "recursive record"
  if isinstance(spec, Rec):
    if spec.cls in stack:
      return where, "recursive record"
    return _expect_record(spec, stack)
  if isinstance(spec, Opt):
    return _expect_type(spec.child, owner, field, stack)
  assert isinstance(spec, Lst)
  err = _expect_type(spec.child, owner, field, stack)
  if err is None and isinstance(spec.child, (Opt, Lst)):
    return where, "list of list or Optional"
  return err


def expect_schema(spec) -> tuple[str, str] | None:
  """None if `parse_schema` must accept the input, else (message prefix, SchemaError kind)."""
  if isinstance(spec, NotDataclass):
    return None, spec.kind
  return _expect_record(spec, ())


def _weight(spec) -> float:
  if isinstance(spec, Leaf):
    return 1.0
  if isinstance(spec, (Opt, Lst)):
    return _weight(spec.child)
  return float(sum(_weight(s) for _, s in spec.fields))


def _check_node(node, spec, key: str, path: tuple[str, ...], field: str) -> None:
  assert (node.key, node.path) == (key, path), (node, key, path)
  if isinstance(spec, Leaf):
    want = {"str": sc.StringNode, "cat": sc.CategoryNode, "float": sc.FloatsNode}[spec.kind]
    assert type(node) is want, (node, spec)
    if spec.kind == "cat":
      assert set(node.values) == set(spec.values), (node.values, spec.values)
    if spec.kind == "float":
      assert node.names == (field,), node
  elif isinstance(spec, Opt):
    assert type(node) is sc.OptionalNode, node
    _check_node(node.child, spec.child, key, path, field)
  elif isinstance(spec, Lst):
    assert type(node) is sc.ListNode, node
    _check_node(node.child, spec.child, key, path + ("[]",), field)
  else:
    _check_record(node, spec, key, path)


def _check_record(node, rec: Rec, key: str, path: tuple[str, ...]) -> None:
  assert type(node) is sc.RecordNode and node.cls is rec.cls, node
  assert (node.key, node.path) == (key, path)
  floats = [f for f, s in rec.fields if _is_float_field(s)]
  others = [(f, s) for f, s in rec.fields if not _is_float_field(s)]
  keys = [c.key for c in node.children]
  assert keys == [f for f, _ in others] + ([sc.FLOATS_KEY] if floats else []), keys
  for (f, s), child in zip(others, node.children):
    _check_node(child, s, f, path + (f,), f)
  if floats:
    last = node.children[-1]
    assert type(last) is sc.FloatsNode and last.names == tuple(floats), last
    assert last.path == path + (sc.FLOATS_KEY,)
  assert node.weight == _weight(rec), (node.weight, _weight(rec))


def check_schema(case) -> str:
  """Runs `parse_schema` on one generated input; asserts its outcome; returns the outcome kind.

  Any exception other than SchemaError propagates (a failure), as does an AssertionError when
  the outcome differs from the spec's.
  """
  obj, spec = case
  if isinstance(spec, NotDataclass):
    obj = spec.obj
  expected = expect_schema(spec)
  try:
    root = sc.parse_schema(obj)
  except sc.SchemaError as e:
    message = str(e)
    kind = schema_error_kind(message)
    assert expected is not None, f"rejected a supported schema: {message}"
    prefix, want = expected
    assert kind == want, f"expected a {want!r} error, got {kind!r}: {message}"
    if prefix is None:  # not a dataclass: the message names what was passed
      assert spec.name in message, (spec.name, message)
    else:
      assert message.startswith(prefix + ": "), f"expected {prefix!r} first: {message}"
    return f"SchemaError: {kind}"
  assert expected is None, f"accepted, but expected {expected}"
  _check_record(root, spec, "", ())
  return "accepted"


# ------------------------------------------------------------------------------------------------
# CSV fuzzing
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FuzzRow:
  """The fuzzed CSV files' schema: every kind of field the loader reads."""

  name: str
  x: float
  y: Optional[float]
  note: Optional[str]
  kind: Literal["a", "b"]


COLUMNS = ("name", "x", "y", "note", "kind")
KIND_VALUES = ("a", "b")

# DataError kinds, by the start of the message after "path, line N, field 'f': "; `row`: the
# kind names no field (a problem of a whole row or file)
CSV_ERRORS = (
  ("no data rows", r"no data rows"),  # first: its message quotes the first skipped row's problem
  ("encoding", r"not valid UTF-8"),
  ("empty file", r"empty file"),
  ("header: duplicate column", r"the header names column"),
  ("header: not comma-separated", r"the header is one column but looks"),
  ("header: missing column", r"column .* not found in header"),
  ("header: column read twice", r"fields .* both read column"),
  ("malformed row: unclosed quote", r"a quoted cell opens in this row and is never closed"),
  ("malformed row", r"malformed CSV row"),
  ("blank line", r"blank line"),
  ("ragged row", r"ragged row"),
  ("bad float: not a number", r"not a number: "),
  ("bad float: not finite", r"not a finite number: "),
  ("bad category value", r".* is not one of the field's values"),
)
FIELD_KINDS = {
  "header: duplicate column",
  "header: missing column",
  "header: column read twice",
  "bad float: not a number",
  "bad float: not finite",
  "bad category value",
}
ANY = "<any>"  # an error field the oracle does not predict


def data_error_kind(e: csv_io.DataError) -> str:
  rest = str(e)[len(_where(e.path, e.line, e.field)) + 2 :]
  for kind, pattern in CSV_ERRORS:
    if re.match(pattern, rest, re.S):
      return kind
  return "unclassified"


def _where(path, line, field) -> str:
  return (
    path
    + ("" if line is None else f", line {line}")
    + ("" if field is None else f", field {field!r}")
  )


def _line_of(raw: bytes) -> int:
  """The line the byte after `raw` is on: line breaks are \\r\\n, \\n or \\r (as csv counts)."""
  return raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n") + 1


@dataclasses.dataclass
class CsvExpect:
  """What `read_csv` must do: return `records` (skipping `skipped_lines`), or raise a DataError
  at `line` whose (kind, field) is one of `errors` (field ANY: not predicted)."""

  records: list | None = None
  skipped_lines: list = dataclasses.field(default_factory=list)
  errors: frozenset = frozenset()
  line: int | None = None


def _cell_problems(row: list[str], col: dict[str, int]):
  """(record, set()) for a valid row of the header's width, else (None, {(kind, field)...})."""
  problems, values = set(), {}
  for name in COLUMNS:
    cell = row[col[name]]
    if name in ("y", "note") and cell == "":
      values[name] = None
    elif name in ("name", "note"):
      values[name] = cell
    elif name == "kind":
      if cell not in KIND_VALUES:
        problems.add(("bad category value", name))
      values[name] = cell
    else:
      try:
        x = float(cell)
      except ValueError:
        problems.add(("bad float: not a number", name))
        continue
      if not math.isfinite(x):
        problems.add(("bad float: not finite", name))
      values[name] = x
  return (None, problems) if problems else (FuzzRow(**values), problems)


def reference_read(raw: bytes, on_bad_row: str) -> CsvExpect:
  """The outcome the loader's documented rules give `raw` (a plain, slow reading of them)."""
  bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
  try:
    text = raw[bom:].decode("utf-8")
  except UnicodeDecodeError as e:
    return CsvExpect(errors=frozenset({("encoding", ANY)}), line=_line_of(raw[: bom + e.start]))
  reader = csv.reader(io.StringIO(text, newline=""), strict=True)

  def rows():  # (first line, row or the csv.Error that ends the file)
    while True:
      start = reader.line_num + 1
      try:
        row = next(reader)
      except StopIteration:
        return
      except csv.Error as e:
        yield start, e
        return
      yield start, row

  def malformed(line, error):
    kind = "malformed row"
    if "unexpected end of data" in str(error):
      kind = "malformed row: unclosed quote"
    return CsvExpect(errors=frozenset({(kind, None)}), line=line)

  it = rows()
  first = next(it, None)
  if first is not None and isinstance(first[1], csv.Error):
    return malformed(*first)
  header = None if first is None else first[1]
  if header is None or not any(h.strip() for h in header):
    return CsvExpect(errors=frozenset({("empty file", None)}), line=1)
  keys = [h.strip().lower() for h in header]
  seen = set()
  for h, k in zip(header, keys):
    if k and k in seen:
      return CsvExpect(errors=frozenset({("header: duplicate column", h.strip())}), line=1)
    seen.add(k)
  if len(header) == 1 and any(d in header[0] for d in csv_io.DELIMITERS):
    return CsvExpect(errors=frozenset({("header: not comma-separated", None)}), line=1)
  missing = [c for c in COLUMNS if c not in keys]
  if missing:
    return CsvExpect(errors=frozenset(("header: missing column", c) for c in missing), line=1)
  col = {c: keys.index(c) for c in COLUMNS}
  records, skipped = [], []
  for start, row in it:
    if isinstance(row, csv.Error):
      return malformed(start, row)
    if not row:
      problems = {("blank line", None)}
    elif len(row) != len(header):
      problems = {("ragged row", None)}
    else:
      record, problems = _cell_problems(row, col)
    if problems:
      if on_bad_row == "error":
        return CsvExpect(errors=frozenset(problems), line=start)
      skipped.append(start)
      continue
    records.append(record)
  if not records:
    return CsvExpect(errors=frozenset({("no data rows", None)}), line=None)
  return CsvExpect(records=records, skipped_lines=skipped)


@dataclasses.dataclass
class CsvOutcome:
  kind: str  # "records", "records, rows skipped and counted" or "DataError: <kind>"
  records: int = 0
  rows_skipped: int = 0


def check_csv(raw: bytes, on_bad_row: str, path: str, *expected: CsvExpect) -> CsvOutcome:
  """Writes `raw` to `path`, reads it with `read_csv`, asserts the outcome is each of
  `expected`, and returns it. Any exception but DataError propagates."""
  with open(path, "wb") as f:
    f.write(raw)
  try:
    records, report = csv_io.read_csv(path, FuzzRow, on_bad_row=on_bad_row)
  except csv_io.DataError as e:
    message, kind = str(e), data_error_kind(e)
    # the message names the file, the line (all but "no data rows") and the field (where the
    # problem is one field's)
    assert message.startswith(_where(path, e.line, e.field) + ": "), message
    assert e.path == path and kind != "unclassified", message
    assert (e.line is None) == (kind == "no data rows"), message
    assert e.line is None or e.line >= 1
    if kind in FIELD_KINDS:
      assert e.field is not None, message
    elif kind != "encoding":
      assert e.field is None, message
    for want in expected:
      assert want.records is None, f"expected {len(want.records)} records, got: {message}"
      assert e.line == want.line, f"expected line {want.line}: {message}"
      assert (kind, e.field) in want.errors or (kind, ANY) in want.errors, (
        f"expected one of {sorted(want.errors, key=str)}: {message}"
      )
    return CsvOutcome(f"DataError: {kind}")
  for want in expected:
    assert want.records is not None, (
      f"expected an error {sorted(want.errors, key=str)} at line {want.line}, "
      f"got {len(records)} records ({report.summary()})"
    )
    assert records == want.records, (records, want.records)
    assert report.rows_skipped == len(want.skipped_lines), report
    assert report.skipped_lines == want.skipped_lines[:20], report
  # never a silent drop: every data row is a record or a counted skip
  assert report.rows_read == len(records) > 0
  assert len(report.skip_reasons) == len(report.skipped_lines) == min(report.rows_skipped, 20)
  for r in records:
    assert isinstance(r.name, str) and r.kind in KIND_VALUES
    assert isinstance(r.x, float) and math.isfinite(r.x)
    assert r.y is None or (isinstance(r.y, float) and math.isfinite(r.y))
    assert r.note is None or (isinstance(r.note, str) and r.note)
  if on_bad_row == "error":
    assert report.rows_skipped == 0
  kind = "records, rows skipped and counted" if report.rows_skipped else "records"
  return CsvOutcome(kind, len(records), report.rows_skipped)


def _cell(good, bad):
  """A cell drawn from `good` eleven times in twelve, else from `bad`."""
  return st.integers(0, 11).flatmap(lambda i: bad if i == 6 else good)


# --- (a) arbitrary bytes --------------------------------------------------------------------

_TOKENS = [
  b",",
  b'"',
  b'""',
  b"\n",
  b"\r",
  b"\r\n",
  b"\x00",
  b"\xff",
  b"\xc3",
  b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
  b"\xc0\xaf",  # overlong
  codecs.BOM_UTF8,
  b" ",
  b"\t",
  b";",
  b"|",
  b"\x0c",
  b"\x1c",
  b"\xc2\x85",
  b"\xe2\x80\xa8",
  b"a",
  b"b",
  b"c",
  b"1",
  b"-2.5",
  b"1e400",
  b"nan",
  b"inf",
  b"1_0",
  b"\xd9\xa3",
  b"name",
  b"x",
  b"y",
  b"note",
  b"kind",
  b"NAME",
  b" kind ",
]
HEADER = b"name,x,y,note,kind\n"
_tokens = st.lists(st.sampled_from(_TOKENS), max_size=40).map(b"".join)
_noise = st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=3).map(b"".join)
_number_tokens = st.sampled_from([b"1", b"-2.5", b"0", b"1e3", b" 7 "])
_token_row = st.tuples(
  _cell(st.sampled_from([b"a", b"", b"x y", b"\xc3\xa9"]), _noise),
  _cell(_number_tokens, _noise),
  _cell(st.one_of(_number_tokens, st.just(b"")), _noise),
  _cell(st.sampled_from([b"", b"n", b'"a,b"']), _noise),
  _cell(st.sampled_from([b"a", b"b"]), _noise),
).map(b",".join)
_token_rows = st.lists(
  st.tuples(_token_row, st.sampled_from([b"\n", b"\r\n", b"\r"])).map(b"".join), max_size=5
).map(b"".join)
arbitrary_bytes = st.one_of(
  st.binary(max_size=200),
  _tokens,
  st.tuples(st.just(HEADER), _tokens).map(b"".join),
  st.tuples(st.just(HEADER), st.binary(max_size=100)).map(b"".join),
  st.tuples(st.just(HEADER), _token_rows).map(b"".join),
)
"""Arbitrary bytes: random bytes; random runs of CSV-ish tokens, with or without a valid header;
a valid header and rows of plausible cells, one in twelve replaced by a run of tokens."""


# --- (b) structured CSV files, and (c) mutations of them -------------------------------------

_text_chars = st.one_of(
  st.sampled_from(list(',"\r\n\x00 \t\ufeff\u2028\x85\x0c;|ab1.')),
  st.characters(codec="utf-8"),
)
_texts = st.text(_text_chars, max_size=8)
_good_floats = st.one_of(
  st.floats(allow_nan=False, allow_infinity=False).map(repr),
  st.floats(-1e6, 1e6).map(lambda v: f"{v:.3f}"),
  st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:e}"),
  st.floats(0, 1e3).map(lambda v: f"+{v}"),
  st.sampled_from([" 1.5 ", "\t-2\t", "1_000", "\u0663", "\uff11\uff12", "-0", ".5", "5."]),
)
_bad_floats = st.one_of(  # mostly: _cell_problems decides, with float()
  st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e999"]),
  st.sampled_from(["", " ", "north", "1,5", "1.2.3", "0x10", "--1", "1e", "e5", "1 2", '"1"']),
  _texts,
)
_good_kinds = st.sampled_from(KIND_VALUES)
_bad_kinds = st.one_of(st.sampled_from(["A", "c", "", " a", "a ", "ab", '"a"']), _texts)


_BAD_BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"]
_EXTRA_COLUMNS = ["extra", "Other", "id", "LAT", ""]


def _case_variants(name: str):
  return st.sampled_from([name, name.upper(), name.title(), f" {name}", f"{name} ", f"\t{name}"])


def _write_cell(cell: str, force_quote: bool) -> str:
  if force_quote or any(c in cell for c in ',"\r\n'):
    return '"' + cell.replace('"', '""') + '"'
  return cell


@dataclasses.dataclass
class StructuredCsv:
  raw: bytes
  expect: dict[str, CsvExpect]  # by on_bad_row


@st.composite
def structured_csvs(draw):
  """A CSV file written cell by cell, with the outcome each on_bad_row must give.

  A valid or damaged header (columns in any order and case, padded, extra or missing or twice),
  0-7 rows of valid and invalid cells (texts with commas, quotes, line breaks, NUL, BOM, U+2028;
  floats in many spellings, non-finite, garbage; category values in and out of the Literal),
  blank and ragged rows, \\n, \\r\\n or \\r line ends (mixed within a file too), an optional BOM,
  and sometimes bytes that are not UTF-8 inside one cell.
  """
  # header
  cols = list(draw(st.permutations(COLUMNS)))
  if draw(st.integers(0, 9)) == 4:
    cols.remove(draw(st.sampled_from(COLUMNS)))
  for extra in draw(st.lists(st.sampled_from(_EXTRA_COLUMNS), max_size=2, unique=True)):
    cols.insert(draw(st.integers(0, len(cols))), extra)
  if draw(st.integers(0, 9)) == 7:
    cols.insert(draw(st.integers(0, len(cols))), draw(st.sampled_from(COLUMNS)))
  written = [draw(_case_variants(c)) if c else c for c in cols]
  keys = [w.strip().lower() for w in written]
  header_error = None
  seen = set()
  for w, k in zip(written, keys):
    if k and k in seen:
      header_error = CsvExpect(errors=frozenset({("header: duplicate column", w.strip())}), line=1)
      break
    seen.add(k)
  missing = [c for c in COLUMNS if c not in keys]
  if header_error is None and missing:
    header_error = CsvExpect(
      errors=frozenset(("header: missing column", c) for c in missing), line=1
    )
  col = {c: keys.index(c) for c in COLUMNS if c in keys}

  # rows: (cells, kind) with kind 'row', 'blank' or 'ragged'
  rows = []
  for _ in range(draw(st.integers(0, 7))):
    kind = draw(st.sampled_from(["row"] * 10 + ["blank", "ragged"]))
    if kind == "blank":
      rows.append(([], kind))
      continue
    cells = []
    for key in keys:
      if key in ("x", "y"):
        cells.append(draw(_cell(_good_floats, _bad_floats)))
      elif key == "kind":
        cells.append(draw(_cell(_good_kinds, _bad_kinds)))
      else:
        cells.append(draw(_texts))
    if kind == "ragged":
      if draw(st.booleans()) and len(cells) > 1:
        cells = cells[: draw(st.integers(1, len(cells) - 1))]
      else:
        cells += draw(st.lists(_texts, min_size=1, max_size=2))
    rows.append((cells, kind))

  # bytes: BOM, header, rows, each line end chosen per file or per row
  ends = draw(st.sampled_from(["\n", "\r\n", "\r", "mixed"]))

  def end():
    return draw(st.sampled_from(["\n", "\r\n", "\r"])) if ends == "mixed" else ends

  bad_at = None  # (row index, cell index) that gets bytes that are not UTF-8
  cell_rows = [i for i, (cells, _) in enumerate(rows) if cells]
  if cell_rows and draw(st.integers(0, 7)) == 3:
    i = draw(st.sampled_from(cell_rows))
    bad_at = (i, draw(st.integers(0, len(rows[i][0]) - 1)))
  out = bytearray(codecs.BOM_UTF8 if draw(st.booleans()) else b"")
  out += ",".join(_write_cell(w, False) for w in written).encode()
  starts, bad_offset = [], None

  def put_end():
    e = end()
    if e.startswith("\n") and out.endswith(b"\r"):  # after a blank row ended by "\r":
      e = "\r"  # "\r" + "\n" would be one line end, and the blank row would vanish
    out.extend(e.encode())

  for i, (cells, kind) in enumerate(rows):
    put_end()
    starts.append(_line_of(bytes(out)))
    for j, cell in enumerate(cells):
      if j:
        out += b","
      force = draw(st.integers(0, 4)) == 0 or (len(cells) == 1 and cell == "")
      text = _write_cell(cell, force)
      if (i, j) == bad_at:
        k = draw(st.integers(0, len(text)))
        head = text[:k].encode()
        bad_offset = len(out) + len(head)
        out += head + draw(st.sampled_from(_BAD_BYTES)) + text[k:].encode()
      else:
        out += text.encode()
  if (rows and not rows[-1][0]) or draw(st.booleans()):  # a blank last row needs its line end
    put_end()
  raw = bytes(out)

  if bad_offset is not None:
    i, j = bad_at
    field = (written[j].strip() or None) if j < len(written) else None
    e = CsvExpect(errors=frozenset({("encoding", field)}), line=_line_of(raw[:bad_offset]))
    return StructuredCsv(raw, {"error": e, "skip": e})
  if header_error is not None:
    return StructuredCsv(raw, {"error": header_error, "skip": header_error})
  expect = {}
  for mode in ("error", "skip"):
    records, skipped, error = [], [], None
    for (cells, kind), start in zip(rows, starts):
      if kind == "blank":
        problems = {("blank line", None)}
      elif kind == "ragged":
        problems = {("ragged row", None)}
      else:
        record, problems = _cell_problems(cells, col)
      if problems:
        if mode == "error":
          error = CsvExpect(errors=frozenset(problems), line=start)
          break
        skipped.append(start)
        continue
      records.append(record)
    if error is None and not records:
      error = CsvExpect(errors=frozenset({("no data rows", None)}), line=None)
    expect[mode] = error or CsvExpect(records=records, skipped_lines=skipped)
  return StructuredCsv(raw, expect)


_MUTATION_TOKENS = [t for t in _TOKENS if len(t) <= 3] + [b'"\n', b'\n"', b"\r\r"]


@st.composite
def mutated_csvs(draw):
  """A structured CSV file with 1-3 byte-level mutations: a token inserted, a slice deleted or
  repeated, the end cut off."""
  raw = bytearray(draw(structured_csvs()).raw)
  for _ in range(draw(st.integers(1, 3))):
    op = draw(st.sampled_from(["insert", "insert", "delete", "repeat", "truncate"]))
    i = draw(st.integers(0, len(raw)))
    j = draw(st.integers(i, min(len(raw), i + 8)))
    if op == "insert":
      raw[i:i] = draw(st.sampled_from(_MUTATION_TOKENS))
    elif op == "delete":
      del raw[i:j]
    elif op == "repeat":
      raw[i:i] = raw[i:j]
    else:
      del raw[i:]
  return bytes(raw)


on_bad_rows = st.sampled_from(["error", "skip"])
