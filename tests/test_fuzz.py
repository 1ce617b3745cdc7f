"""Fuzzing of the schema parser and the CSV loader with hypothesis (issue #16).

The only outcomes allowed are records (a parsed schema), or an error that names where: the file,
the line and the field for CSV (`DataError`), ``Class.field`` for schemas (`SchemaError`). Each
generated input comes with the outcome it must have (experiments/fuzz_strategies.py: the
strategies and their oracles, shared with experiments/fuzz_campaign.py, which runs them for
thousands of examples and counts the outcomes). Derandomized, so CI runs the same examples.

Below the properties: one regression test per bug the fuzzing found, with its minimal input.
"""

import dataclasses
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings

from alala_jax import schema as sc
from alala_jax.data import csv_io
from experiments import fuzz_strategies as fz

FUZZ = settings(
  max_examples=200,
  deadline=None,
  derandomize=True,
  database=None,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
  return str(tmp_path_factory.mktemp("fuzz") / "fuzz.csv")


# --- properties ------------------------------------------------------------------------------


@FUZZ
@given(fz.schemas)
def test_schema_parser_accepts_or_names_class_and_field(case):
  fz.check_schema(case)


@FUZZ
@given(fz.arbitrary_bytes, fz.on_bad_rows)
def test_csv_arbitrary_bytes(csv_path, raw, on_bad_row):
  fz.check_csv(raw, on_bad_row, csv_path, fz.reference_read(raw, on_bad_row))


@FUZZ
@given(fz.structured_csvs(), fz.on_bad_rows)
def test_csv_structured(csv_path, case, on_bad_row):
  # the generator's own account of the file, and the reference reading, must both hold
  want = case.expect[on_bad_row]
  fz.check_csv(case.raw, on_bad_row, csv_path, want, fz.reference_read(case.raw, on_bad_row))


@FUZZ
@given(fz.mutated_csvs(), fz.on_bad_rows)
def test_csv_mutated(csv_path, raw, on_bad_row):
  fz.check_csv(raw, on_bad_row, csv_path, fz.reference_read(raw, on_bad_row))


# --- regressions: the bugs the fuzzing found, each with its minimal input ---------------------


def schema_error(cls) -> str:
  with pytest.raises(sc.SchemaError) as e:
    sc.parse_schema(cls)
  return str(e.value)


def test_list_of_two_element_types_is_a_schema_error():
  # was: ValueError "too many values to unpack" (list[str, float] is a valid expression)
  C = dataclasses.make_dataclass("C", [("a", list[str, float])])
  assert schema_error(C).startswith("C.a: list[str, float] has 2 element types")


@pytest.mark.parametrize("annotation", ["int x", "str()", "list["])
def test_annotation_string_that_does_not_evaluate_names_the_field(annotation):
  # was: SyntaxError / IndexError from inside typing.get_type_hints
  C = dataclasses.make_dataclass("C", [("ok", str), ("a", annotation)])
  assert schema_error(C).startswith(f"C.a: cannot resolve annotation {annotation!r}")


def test_undefined_name_in_annotation_names_the_field():
  # was: "C: cannot resolve annotations (...)", without the field
  C = dataclasses.make_dataclass("C", [("ok", str), ("b", "Undefined")])
  assert schema_error(C).startswith("C.b: cannot resolve annotation")


@dataclasses.dataclass
class Node:
  name: str
  child: Optional["Node"]


@dataclasses.dataclass
class Ping:
  pongs: list["Pong"]


@dataclasses.dataclass
class Pong:
  ping: "Ping"


def test_recursive_dataclass_is_a_schema_error():
  # was: RecursionError
  assert schema_error(Node).startswith("Node.child: recursive record type (Node -> Node)")
  assert schema_error(Ping).startswith("Pong.ping: recursive record type (Ping -> Pong -> Ping)")


def test_non_dataclass_whose_repr_fails():
  # was: the repr's RuntimeError, raised while building the SchemaError's message
  class Odd:
    def __repr__(self):
      raise RuntimeError("no repr")

  assert schema_error(Odd()) == "<Odd object> is not a dataclass type"
  assert schema_error(sc.Address(1.0, 2.0, *"abcdefg")).startswith(
    "Address: got an instance of the dataclass"
  )


def read(tmp_path, raw: bytes, **kw):
  path = tmp_path / "a.csv"
  path.write_bytes(raw)
  return csv_io.read_csv(str(path), fz.FuzzRow, **kw)


def encoding_error(tmp_path, raw: bytes) -> csv_io.DataError:
  with pytest.raises(csv_io.DataError, match="not valid UTF-8") as e:
    read(tmp_path, raw)
  offset = raw.index(b"\xff")
  assert f"(byte 0xff at offset {offset})" in str(e.value)
  return e.value


def test_bad_byte_in_a_file_with_cr_line_ends(tmp_path):
  # was: csv.Error "new-line character seen in unquoted field" (hypothesis: b"\r\xff"), and the
  # line counted \n only
  e = encoding_error(tmp_path, b"name,x,y,note,kind\rA,1,,,a\rB,\xff,,,a\r")
  assert (e.line, e.field) == (3, "x")


def test_bad_byte_after_a_bom(tmp_path):
  # was: the offset (and so the byte and the field) counted from after the BOM: "byte 0x2c"
  e = encoding_error(tmp_path, b"\xef\xbb\xbfname,x,y,note,kind\nA,1,,,\xff\n")
  assert (e.line, e.field) == (2, "kind")


def test_bad_byte_after_a_quoted_line_break(tmp_path):
  # was: cells counted from the start of the physical line: field 'x'
  e = encoding_error(tmp_path, b'name,x,y,note,kind\nA,1,,"two\nlines",\xff\n')
  assert (e.line, e.field) == (3, "kind")


def test_bad_byte_under_an_empty_header_name(tmp_path):
  e = encoding_error(tmp_path, b"name,x,y,note,kind,\nA,1,,,a,\xff\n")
  assert (e.line, e.field) == (2, None)  # was: field ''


def test_bad_row_is_named_by_its_first_line(tmp_path):
  # was: the row's last line (a quoted cell spans two), unlike malformed rows
  raw = b'name,x,y,note,kind\nA,oops,,"two\nlines",a\nB,1,,,a\n'
  with pytest.raises(csv_io.DataError, match="line 2, field 'x': not a number") as e:
    read(tmp_path, raw)
  assert e.value.line == 2
  recs, report = read(tmp_path, raw, on_bad_row="skip")
  assert len(recs) == 1 and report.skipped_lines == [2]


def test_delimiter_sniff_reads_the_header_row(tmp_path):
  # was: str.splitlines() ends the line at \x0c: "column 'name' not found"
  with pytest.raises(csv_io.DataError, match="looks semicolon-separated"):
    read(tmp_path, b"name\x0c;x;y;note;kind\nA;1;;;a\n")


def test_no_data_rows_says_why_the_rows_were_skipped(tmp_path):
  with pytest.raises(csv_io.DataError, match=r"no data rows \(1 skipped; first: line 2: not a"):
    read(tmp_path, b"name,x,y,note,kind\nA,1e400x,,,a\n", on_bad_row="skip")
