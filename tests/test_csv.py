import pytest

from alala_jax import schema as sc
from alala_jax.data import csv_io
from tests.conftest import vermont_or_skip

HEADER = "LON,LAT,NUMBER,STREET,UNIT,CITY,DISTRICT,REGION,POSTCODE\n"
GOOD = (
  "-73.2,42.9,70,MCCARTHY  ACRES,,SHAFTSBURY,,,05262\n-73.0,43.8,,CATAMOUNT DR,,LEICESTER,,,05769\n"
)


def write(tmp_path, text, mode="w"):
  p = tmp_path / "a.csv"
  if mode == "wb":
    p.write_bytes(text)
  else:
    p.write_text(text)
  return str(p)


def test_reads_and_maps_columns(tmp_path):
  recs, report = csv_io.read_csv(write(tmp_path, HEADER + GOOD), sc.Address, "long=LON")
  assert report.rows_read == 2 and report.rows_skipped == 0
  assert recs[0] == sc.Address(
    lat=42.9,
    long=-73.2,
    number="70",
    street="MCCARTHY  ACRES",
    unit="",
    city="SHAFTSBURY",
    district="",
    region="",
    postcode="05262",
  )
  assert recs[1].number == ""


@pytest.mark.parametrize(
  "text, line, field, needle",
  [
    (HEADER.replace("LAT,", "") + "-73.2,70,A,,B,,,05262\n", 1, "lat", "column 'lat' not found"),
    (HEADER + "-73.2,north,70,A,,B,,,05262\n", 2, "lat", "not a number: 'north'"),
    (HEADER + GOOD + "-73.2,nan,70,A,,B,,,05262\n", 4, "lat", "not a finite number"),
    (HEADER + "-73.2,inf,70,A,,B,,,05262\n", 2, "lat", "not a finite number"),
    (HEADER + "-73.2,42.9,70,A,,B,,05262\n", 2, None, "ragged row: 8 cells"),
    (HEADER + GOOD + "\n", 4, None, "blank line"),
    ("", 1, None, "empty file"),
    (HEADER, None, None, "no data rows"),
  ],
)
def test_bad_input_names_file_line_field(tmp_path, text, line, field, needle):
  path = write(tmp_path, text)
  with pytest.raises(csv_io.DataError) as e:
    csv_io.read_csv(path, sc.Address, "long=LON")
  assert needle in str(e.value) and path in str(e.value)
  assert (e.value.line, e.value.field) == (line, field)
  if line is not None:
    assert f"line {line}" in str(e.value)


def test_wrong_encoding(tmp_path):
  path = write(tmp_path, (HEADER + GOOD).encode() + b"-73.2,42.9,7,CAF\xe9 ST,,B,,,05262\n", "wb")
  with pytest.raises(csv_io.DataError, match="line 4, field 'STREET'.*not valid UTF-8") as e:
    csv_io.read_csv(path, sc.Address, "long=LON")
  assert e.value.line == 4 and e.value.field == "STREET"


def test_skip_counts_every_bad_row(tmp_path):
  text = HEADER + GOOD + "-73.2,x,70,A,,B,,,05262\n-73.2,42.9,70\n" + GOOD
  recs, report = csv_io.read_csv(write(tmp_path, text), sc.Address, "long=LON", on_bad_row="skip")
  assert len(recs) == 4 and report.rows_skipped == 2 and report.skipped_lines == [4, 5]
  assert "2 skipped" in report.summary()


def test_vermont_file_loads_with_strings_kept():
  recs, report = csv_io.read_csv(vermont_or_skip(), sc.Address, "long=LON")
  assert report.rows_read == 33432 and report.rows_skipped == 0
  assert {len(r.postcode) for r in recs} == {0, 1, 5}  # leading zeros kept: "05262"
  assert sum(r.postcode == "" for r in recs) == 29
  assert sum(r.postcode == " " for r in recs) == 111  # whitespace-only cells kept as is
  assert sum(r.number == "" for r in recs) == 2257
  assert all(r.unit == r.district == r.region == "" for r in recs)


@pytest.mark.parametrize(
  "text, line, field, needle",
  [
    (
      HEADER.replace("UNIT", "city"),
      1,
      "CITY",
      r"names column 'CITY' twice \(columns 5 and 6, compared case-insensitively\)",
    ),
    (HEADER.replace(",", ";") + GOOD.replace(",", ";"), 1, None, "looks semicolon-separated"),
    (HEADER.replace(",", "\t") + GOOD.replace(",", "\t"), 1, None, "looks tab-separated"),
    (
      HEADER + GOOD + '-73.1,43.0,5,"OPEN QUOTE,,X,,,05000\n-73.0,43.1,6,B,,Y,,,05001\n',
      4,
      None,
      "a quoted cell opens in this row and is never closed",
    ),
  ],
)
def test_ambiguous_input_is_an_error(tmp_path, text, line, field, needle):
  with pytest.raises(csv_io.DataError, match=needle) as e:
    csv_io.read_csv(write(tmp_path, text), sc.Address, "long=LON")
  assert (e.value.line, e.value.field) == (line, field)


def test_two_fields_reading_one_column_is_an_error(tmp_path):
  with pytest.raises(csv_io.DataError, match="fields 'lat' and 'long' both read column 'LAT'"):
    csv_io.read_csv(write(tmp_path, HEADER + GOOD), sc.Address, "long=LAT")
