"""Dataclass -> field tree (paper 000, Sec 2.3 and Appendix B.3).

A record type is described by a Python dataclass. `parse_schema` turns it into an immutable tree of
nodes from which the model (`alala_jax.nn.builder`), the array codec (`alala_jax.data.codec`) and the
loss weights are derived:

* ``str`` field                -> `StringNode` (modelled by the one shared StringLiteral module);
* ``Literal['a', 'b', ...]`` field, or a ``str`` field named in ``categorical`` ->
  `CategoryNode`: one softmax over the field's values instead of characters (not in the paper;
  for low-cardinality strings such as city or postcode, see BUILD_NOTES "Categorical fields");
* all ``float`` fields         -> ONE `FloatsNode` (ScalarTuple), placed LAST among the children;
* nested dataclass             -> `RecordNode` (a nested Tuple);
* ``Optional[X]`` / ``X | None`` -> `OptionalNode(X)`: a presence bit plus X (not in the paper);
* ``list[X]``                  -> `ListNode(X)`: a length plus a recurrent list of X (not in the paper).

Everything else raises `SchemaError` naming the class and the field.

Loss weights (Sec 2.3, App B.1/B.2): every string (and category) field weighs 1, every float field weighs 1 (so a
ScalarTuple of k floats weighs k), a record weighs the sum of its children, and an optional or a
list weighs what its element weighs. `num_fields` of the root is the divisor of the reconstruction
loss (9 for the paper's Address).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Iterable, Literal, Union

FLOATS_KEY = "__floats__"


class SchemaError(TypeError):
  """A dataclass field whose annotation cannot be modelled."""


@dataclasses.dataclass(frozen=True)
class StringNode:
  """A string field, modelled by the shared StringLiteral (App B.1)."""

  key: str
  path: tuple[str, ...]

  @property
  def weight(self) -> float:
    return 1.0


@dataclasses.dataclass(frozen=True)
class CategoryNode:
  """A low-cardinality string field modelled by one softmax over its values (not in the paper).

  ``values`` are the allowed values of a ``Literal[...]`` annotation, or None when the values are
  the ones seen in training (a field named in ``parse_schema(..., categorical=...)``); the data
  spec then stores them.
  """

  key: str
  path: tuple[str, ...]
  values: tuple[str, ...] | None = None

  @property
  def weight(self) -> float:
    return 1.0


@dataclasses.dataclass(frozen=True)
class FloatsNode:
  """All float fields of a record, modelled jointly by one ScalarTuple (App B.2)."""

  key: str
  path: tuple[str, ...]
  names: tuple[str, ...]

  @property
  def weight(self) -> float:
    return float(len(self.names))


@dataclasses.dataclass(frozen=True)
class _Wrapper:
  """A node around one element node; it weighs what its element weighs."""

  key: str
  path: tuple[str, ...]
  child: "Node"

  @property
  def weight(self) -> float:
    return self.child.weight


class OptionalNode(_Wrapper):
  """``Optional[X]``: a presence bit (Bernoulli) plus X's model; X's loss counts only if present."""


class ListNode(_Wrapper):
  """``list[X]``: a recurrent list of X with a per-item stop bit; at most `max_items` items."""


@dataclasses.dataclass(frozen=True)
class RecordNode:
  """A dataclass, modelled by a Tuple (App B.3): children in field order, floats last."""

  key: str
  path: tuple[str, ...]
  cls: type
  children: tuple["Node", ...]

  @property
  def weight(self) -> float:
    return float(sum(c.weight for c in self.children))

  @property
  def num_fields(self) -> float:
    """The divisor of the reconstruction loss: total weight of all leaf fields."""
    return self.weight


Node = Union[StringNode, CategoryNode, FloatsNode, OptionalNode, ListNode, RecordNode]
LEAF_STRINGS = (StringNode, CategoryNode)  # leaves whose values are Python strings


def _unwrap_optional(tp: Any) -> Any | None:
  origin = typing.get_origin(tp)
  if origin in (Union, types.UnionType):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(tp)) == 2:
      return args[0]
  return None


def _literal_values(tp: Any, owner: type, field: str) -> tuple[str, ...]:
  values = typing.get_args(tp)
  bad = [v for v in values if not isinstance(v, str)]
  if bad or not values:
    raise SchemaError(
      f"{owner.__name__}.{field}: Literal[...] fields must list string values, got {values!r}"
    )
  return tuple(values)


def _parse_type(
  tp: Any,
  key: str,
  path: tuple[str, ...],
  owner: type,
  field: str,
  categorical: frozenset,
  stack: tuple[type, ...],
) -> Node:
  inner = _unwrap_optional(tp)
  if inner is not None:
    child = _parse_type(inner, key, path, owner, field, categorical, stack)
    if isinstance(child, OptionalNode):
      raise SchemaError(f"{owner.__name__}.{field}: nested Optional is not supported")
    return OptionalNode(key=key, path=path, child=child)
  origin = typing.get_origin(tp)
  if origin is list or tp is list:
    args = typing.get_args(tp)
    if not args:
      raise SchemaError(f"{owner.__name__}.{field}: list needs an element type, e.g. list[str]")
    if len(args) != 1:  # list[str, float] is a valid expression; it is no list type
      raise SchemaError(
        f"{owner.__name__}.{field}: {tp!r} has {len(args)} element types; a list takes one, "
        "e.g. list[str]"
      )
    child = _parse_type(args[0], key, path + ("[]",), owner, field, categorical, stack)
    if isinstance(child, (ListNode, OptionalNode)):
      raise SchemaError(
        f"{owner.__name__}.{field}: list of {type(child).__name__} is not supported"
      )
    return ListNode(key=key, path=path, child=child)
  if origin is Literal:
    return CategoryNode(key=key, path=path, values=_literal_values(tp, owner, field))
  if tp is str:
    if path_name(path) in categorical:
      return CategoryNode(key=key, path=path)
    return StringNode(key=key, path=path)
  if path_name(path) in categorical:
    raise SchemaError(f"{owner.__name__}.{field}: only str fields can be categorical, not {tp!r}")
  if tp is float:
    return FloatsNode(key=key, path=path, names=(field,))
  if dataclasses.is_dataclass(tp) and isinstance(tp, type):
    if tp in stack:  # the tree would be infinite
      cycle = " -> ".join(c.__name__ for c in stack[stack.index(tp) :] + (tp,))
      raise SchemaError(
        f"{owner.__name__}.{field}: recursive record type ({cycle}); a record must be a finite "
        "tree of fields"
      )
    return _parse_record(tp, key, path, categorical, stack)
  raise SchemaError(
    f"{owner.__name__}.{field}: unsupported annotation {tp!r}; use str, float, Literal[...], "
    "a dataclass, Optional[...] or list[...] (store integers such as house numbers as str)"
  )


def _type_hints(cls: type) -> dict[str, Any]:
  """`typing.get_type_hints`; an annotation that does not evaluate (an undefined name, a string
  that is no expression...) is a `SchemaError` naming the field whose annotation it is."""
  try:
    return typing.get_type_hints(cls)
  except Exception as e:  # evaluating a string annotation can raise anything
    error = e
  for f in dataclasses.fields(cls):  # which field: evaluate each annotation on its own
    one = type(
      cls.__name__, (), {"__annotations__": {f.name: f.type}, "__module__": cls.__module__}
    )
    try:
      typing.get_type_hints(one, localns=dict(vars(cls)))
    except Exception as e:
      raise SchemaError(
        f"{cls.__name__}.{f.name}: cannot resolve annotation {f.type!r} ({type(e).__name__}: {e})"
      ) from None
  raise SchemaError(
    f"{cls.__name__}: cannot resolve annotations ({type(error).__name__}: {error})"
  ) from None


def _parse_record(
  cls: type,
  key: str,
  path: tuple[str, ...],
  categorical: frozenset,
  stack: tuple[type, ...] = (),
) -> RecordNode:
  hints = _type_hints(cls)
  stack = stack + (cls,)
  fields = dataclasses.fields(cls)
  if not fields:
    raise SchemaError(f"{cls.__name__}: a record needs at least one field")
  children: list[Node] = []
  floats: list[str] = []
  for f in fields:
    tp = hints[f.name]
    if f.name == FLOATS_KEY:
      raise SchemaError(f"{cls.__name__}.{f.name}: field name is reserved")
    if tp is float:
      if path_name(path + (f.name,)) in categorical:
        raise SchemaError(f"{cls.__name__}.{f.name}: only str fields can be categorical")
      floats.append(f.name)
      continue
    children.append(_parse_type(tp, f.name, path + (f.name,), cls, f.name, categorical, stack))
  if floats:
    children.append(FloatsNode(key=FLOATS_KEY, path=path + (FLOATS_KEY,), names=tuple(floats)))
  return RecordNode(key=key, path=path, cls=cls, children=tuple(children))


def parse_schema(cls: type, categorical: Iterable[str] = ()) -> RecordNode:
  """Parses a dataclass into the field tree.

  Args:
    cls: a dataclass type whose fields are str, float, Literal[...] of strings, dataclasses,
      Optional[...] or list[...].
    categorical: path names (``"city"``, ``"owner.name"``, ``"tags.[]"``... as `path_name`
      writes them) of str fields to model as categories of their training values.

  Returns:
    The root `RecordNode`.

  Raises:
    SchemaError: if `cls` is not a dataclass, a field annotation is unsupported or does not
      evaluate, a record contains itself (directly or through other records), or a
      `categorical` name is not a str field; the message names the class and the field
      (``Class.field: ...``; ``Class: ...`` for a problem of the whole class). Nothing else
      escapes: tests/test_fuzz.py fuzzes this with hypothesis.
  """
  if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
    if dataclasses.is_dataclass(cls):
      raise SchemaError(
        f"{type(cls).__name__}: got an instance of the dataclass, not the dataclass type; pass "
        f"{type(cls).__name__} itself"
      )
    raise SchemaError(f"{_describe(cls)} is not a dataclass type")
  wanted = frozenset(categorical)
  root = _parse_record(cls, key="", path=(), categorical=wanted)
  found = {path_name(n.path) for n in iter_nodes(root) if isinstance(n, CategoryNode)}
  unknown = sorted(wanted - found)
  if unknown:
    names = [path_name(n.path) for n in iter_nodes(root) if isinstance(n, StringNode)]
    raise SchemaError(
      f"{cls.__name__}: categorical field(s) {unknown} are not str fields of the schema; "
      f"its str fields are {names}"
    )
  return root


def _describe(obj: Any) -> str:
  """`repr(obj)` for an error message, shortened; a repr that fails gives the type's name."""
  try:
    text = repr(obj)
  except Exception:
    return f"<{type(obj).__name__} object>"
  return text if len(text) <= 200 else text[:200] + "..."


def iter_nodes(node: Node):
  """Yields every node of the tree, depth first, parents before children."""
  yield node
  if isinstance(node, RecordNode):
    for c in node.children:
      yield from iter_nodes(c)
  elif isinstance(node, (OptionalNode, ListNode)):
    yield from iter_nodes(node.child)


def string_paths(node: Node) -> list[tuple[str, ...]]:
  """Paths of all string leaves modelled character by character (a list element's path
  contains '[]')."""
  return [n.path for n in iter_nodes(node) if isinstance(n, StringNode)]


def category_paths(node: Node) -> list[tuple[str, ...]]:
  """Paths of all category leaves."""
  return [n.path for n in iter_nodes(node) if isinstance(n, CategoryNode)]


def path_name(path: tuple[str, ...]) -> str:
  return ".".join(p for p in path if p != FLOATS_KEY) or "<root>"


@dataclasses.dataclass
class Address:
  """The paper's Address message (App A); floats (lat, long) become the last Tuple element."""

  lat: float
  long: float
  number: str
  street: str
  unit: str
  city: str
  district: str
  region: str
  postcode: str
