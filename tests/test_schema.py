import dataclasses
from typing import Optional

import pytest

from alala_jax import schema as sc
from tests.conftest import Tagged


def test_address_is_tuple_of_seven_strings_then_floats():
  root = sc.parse_schema(sc.Address)
  keys = [c.key for c in root.children]
  assert keys == [
    "number",
    "street",
    "unit",
    "city",
    "district",
    "region",
    "postcode",
    sc.FLOATS_KEY,
  ]
  assert isinstance(root.children[-1], sc.FloatsNode)
  assert root.children[-1].names == ("lat", "long")
  assert root.num_fields == 9  # the paper's divisor: 7 strings + 2 floats


def test_nested_list_optional():
  root = sc.parse_schema(Tagged)
  kinds = {c.key: type(c).__name__ for c in root.children}
  assert kinds == {
    "title": "StringNode",
    "owner": "RecordNode",
    "tags": "ListNode",
    "nickname": "OptionalNode",
    sc.FLOATS_KEY: "FloatsNode",
  }
  owner = root.children[1]
  assert [c.key for c in owner.children] == ["name", sc.FLOATS_KEY]
  # weights: title 1 + owner (1 + 1) + tags 1 + nickname 1 + (x, y) 2
  assert root.num_fields == 7
  assert sc.string_paths(root) == [("title",), ("owner", "name"), ("tags", "[]"), ("nickname",)]


def test_optional_spellings_agree():
  @dataclasses.dataclass
  class A:
    a: Optional[str]
    b: str | None

  root = sc.parse_schema(A)
  assert all(isinstance(c, sc.OptionalNode) for c in root.children)


@pytest.mark.parametrize(
  "annotation, needle",
  [
    (int, "unsupported annotation"),
    (dict, "unsupported annotation"),
    (list, "list needs an element type"),
    (list[list[str]], "list of ListNode"),
  ],
)
def test_unsupported_annotation_names_class_and_field(annotation, needle):
  Bad = dataclasses.make_dataclass("Bad", [("ok", str), ("weird", annotation)])
  with pytest.raises(sc.SchemaError) as e:
    sc.parse_schema(Bad)
  assert "Bad.weird" in str(e.value) and needle in str(e.value)


def test_not_a_dataclass():
  with pytest.raises(sc.SchemaError, match="not a dataclass"):
    sc.parse_schema(int)
