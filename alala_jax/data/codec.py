"""Records <-> padded numpy arrays, one array group per schema node.

Array layout (leading dims ``[...]`` are ``[B]``, or ``[B, N]`` inside a list of ``N`` items):

* `StringNode`:  ``{'chars': int32[..., T], 'length': int32[...]}`` with ``T = max_len + 1``;
  ``chars`` holds character ids, END (0) at position ``length`` and END padding after it.
  Strings are padded per field (not to one global maximum, DESIGN §5).
* `CategoryNode`: ``int32[...]`` value ids: 0 stands for a value outside the field's categories
  (counted in `EncodeReport.oov_values`, decoded as U+FFFD), ids 1.. are the categories in the
  order of `DataSpec.categories`.
* `FloatsNode`:  ``float32[..., k]`` raw values in the dataclass field order (``[..., 1]`` for a
  float inside ``Optional[...]`` or ``list[...]``, whose record value is the number itself).
* `OptionalNode`: ``{'present': float32[...], 'value': <child>}``.
* `ListNode`:    ``{'count': int32[...], 'items': <child with an extra N axis>}``.
* `RecordNode`:  ``{child.key: <child>}``.

Vocabulary: id 0 is the end-of-string token, id 1 stands for characters outside the vocabulary
(counted in `EncodeReport.oov_chars`, decoded as U+FFFD), ids 2.. are the training characters in
sorted order. Strings longer than the field's ``max_len`` and lists longer than ``max_items`` (only
possible for data other than the data the spec was built from) are truncated and counted.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import jax
import numpy as np

from alala_jax import schema as sc

END_ID = 0
OOV_ID = 1
OOV_CHAR = "\ufffd"
OOV_VALUE = 0  # the category id of a value outside the field's categories


@dataclasses.dataclass
class EncodeReport:
  """Counts of documented lossy handling during encoding."""

  oov_chars: int = 0
  truncated_strings: int = 0
  truncated_lists: int = 0
  oov_values: int = 0  # category values not among the field's categories

  def merge(self, other: "EncodeReport") -> "EncodeReport":
    return EncodeReport(
      *(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other)))
    )


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What is needed to turn records into arrays: vocabulary and per-field maximum sizes."""

  chars: str
  max_len: dict[str, int]  # path name -> maximum string length
  max_items: dict[str, int]  # path name -> maximum list length
  categories: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # path name ->
  # the values of a category field (ids 1..; 0 is a value outside them). Specs written before
  # category fields existed have none.

  @property
  def vocab_size(self) -> int:
    return len(self.chars) + 2

  def num_values(self, name: str) -> int:
    """Number of ids of category field `name`: its values plus the outside-value id 0."""
    return len(self.categories[name]) + 1

  def char_to_id(self) -> dict[str, int]:
    return {c: i + 2 for i, c in enumerate(self.chars)}

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "DataSpec":
    return cls(**json.loads(text))


def _get(record: Any, name: str) -> Any:
  if record is None:
    return None
  if isinstance(record, dict):
    return record.get(name)
  return getattr(record, name)


def node_values(root: sc.RecordNode, records: Sequence[Any]):
  """Yields ``(node, values)`` for every node below the root except floats: the values of that
  node over all records (list items flattened, absent Optional values and absent records
  dropped)."""

  def visit(node: sc.Node, values: list[Any]):
    yield node, values
    if isinstance(node, sc.OptionalNode):
      yield from visit(node.child, [v for v in values if v is not None])
    elif isinstance(node, sc.ListNode):
      yield from visit(node.child, [item for v in values if v for item in v])
    elif isinstance(node, sc.RecordNode):
      for c in node.children:
        if not isinstance(c, sc.FloatsNode):
          yield from visit(c, [_get(v, c.key) for v in values])

  for node, values in visit(root, list(records)):
    if node is not root:
      yield node, values


def build_spec(root: sc.RecordNode, records: Sequence[Any], min_len: int = 1) -> DataSpec:
  """Builds the vocabulary, per-field maximum lengths and category values from (training)
  records. A ``Literal[...]`` field's categories are its annotation's values, in their order;
  any other category field's are its distinct training values, sorted."""
  chars: set[str] = set()
  max_len: dict[str, int] = {}
  max_items: dict[str, int] = {}
  categories: dict[str, list[str]] = {}
  for node, values in node_values(root, records):
    name = sc.path_name(node.path)
    if isinstance(node, sc.CategoryNode):
      seen = sorted({v for v in values if v is not None})
      categories[name] = list(node.values) if node.values is not None else seen
    elif isinstance(node, sc.StringNode):
      for v in values:
        if v:
          chars.update(v)
      max_len[name] = max([min_len] + [len(v) for v in values if v])
    elif isinstance(node, sc.ListNode):
      max_items[name] = max([1] + [len(v) for v in values if v])
  return DataSpec(
    chars="".join(sorted(chars)), max_len=max_len, max_items=max_items, categories=categories
  )


def choose_categorical(
  root: sc.RecordNode, records: Sequence[Any], max_values: int, max_share: float
) -> tuple[list[str], str]:
  """The str fields to model as categories: those with at most `max_values` distinct values in
  `records` that are also at most `max_share` x the number of values (so that each value is
  seen, on average, at least 1 / max_share times).

  Returns:
    ``(names, note)``: the field path names, and a line that says what was chosen and why.
  """
  names, chosen, kept = [], [], []
  for node, values in node_values(root, records):
    if isinstance(node, sc.StringNode):
      distinct = len(set(values))
      name = sc.path_name(node.path)
      if 1 <= distinct <= max_values and distinct <= max_share * len(values):
        names.append(name)
        chosen.append(f"{name} ({distinct})")
      else:
        kept.append(f"{name} ({distinct})")
  note = (
    f"categorical fields (auto: <= {max_values} distinct values and <= {max_share:g} x rows): "
    + (", ".join(chosen) or "none")
    + "; character-level: "
    + (", ".join(kept) or "none")
  )
  return names, note


def check_categories(root: sc.RecordNode, spec: DataSpec) -> None:
  """Checks that `spec` has categories for exactly the schema's category fields.

  Raises:
    ValueError: naming the fields, if the spec was built for another choice of category fields.
  """
  want = {sc.path_name(p) for p in sc.category_paths(root)}
  have = set(spec.categories)
  if want != have:
    raise ValueError(
      f"the data spec has category fields {sorted(have)} but the schema has {sorted(want)}; "
      "a trained workdir keeps the category fields it was trained with (config.data.categorical)"
    )


def encode(
  root: sc.RecordNode, spec: DataSpec, records: Sequence[Any]
) -> tuple[dict[str, Any], EncodeReport]:
  """Encodes records (dataclass instances or nested dicts) into the array pytree.

  Returns:
    ``(arrays, report)`` where ``report`` counts out-of-vocabulary characters and truncations.
  """
  report = EncodeReport()
  c2i = spec.char_to_id()
  v2i = {name: {v: i + 1 for i, v in enumerate(vals)} for name, vals in spec.categories.items()}

  def enc(node: sc.Node, values: list[Any]) -> Any:
    n = len(values)
    if isinstance(node, sc.CategoryNode):
      ids = v2i[sc.path_name(node.path)]
      out = np.full((n,), OOV_VALUE, np.int32)
      for i, v in enumerate(values):
        if v is not None:  # None: an absent Optional value or a shape-only batch row
          out[i] = ids.get(v, OOV_VALUE)
          report.oov_values += int(out[i] == OOV_VALUE)
      return out
    if isinstance(node, sc.StringNode):
      max_len = spec.max_len[sc.path_name(node.path)]
      chars = np.zeros((n, max_len + 1), np.int32)
      length = np.zeros((n,), np.int32)
      for i, v in enumerate(values):
        v = v or ""
        if len(v) > max_len:
          report.truncated_strings += 1
          v = v[:max_len]
        ids = [c2i.get(ch, OOV_ID) for ch in v]
        report.oov_chars += sum(1 for t in ids if t == OOV_ID)
        chars[i, : len(ids)] = ids
        length[i] = len(ids)
      return {"chars": chars, "length": length}
    if isinstance(node, sc.FloatsNode):
      out = np.zeros((n, len(node.names)), np.float32)
      scalar = node.key != sc.FLOATS_KEY  # a float inside Optional[...] / list[...]
      for i, v in enumerate(values):
        if v is not None:
          out[i] = [v] if scalar else [_get(v, f) for f in node.names]
      return out
    if isinstance(node, sc.OptionalNode):
      present = np.array([v is not None for v in values], np.float32)
      return {"present": present, "value": enc(node.child, values)}
    if isinstance(node, sc.ListNode):
      m = spec.max_items[sc.path_name(node.path)]
      count = np.zeros((n,), np.int32)
      flat: list[Any] = []
      for i, v in enumerate(values):
        v = list(v or [])
        if len(v) > m:
          report.truncated_lists += 1
          v = v[:m]
        count[i] = len(v)
        flat.extend(v + [None] * (m - len(v)))
      items = enc(node.child, flat)
      items = jax.tree.map(lambda a: a.reshape((n, m) + a.shape[1:]), items)
      return {"count": count, "items": items}
    assert isinstance(node, sc.RecordNode)
    out = {}
    for c in node.children:
      if isinstance(c, sc.FloatsNode):
        out[c.key] = enc(c, values)  # float fields are read from the record itself
      else:
        out[c.key] = enc(c, [_get(v, c.key) for v in values])
    return out

  return enc(root, list(records)), report


def decode(
  root: sc.RecordNode, spec: DataSpec, arrays: dict[str, Any], as_dict: bool = False
) -> list[Any]:
  """Decodes the array pytree (numpy or jax) back into records.

  For strings the first END token ends the string (``length`` is ignored if ``chars`` has an
  END earlier), so sampled decoder outputs decode directly. Optional values whose ``present``
  is < 0.5 decode to None. Returns dataclass instances, or nested dicts if `as_dict`.
  """
  i2c = np.array([""] + [OOV_CHAR] + list(spec.chars), dtype=object)
  i2v = {name: [OOV_CHAR] + list(vals) for name, vals in spec.categories.items()}

  def dec(node: sc.Node, a: Any) -> list[Any]:
    if isinstance(node, sc.CategoryNode):
      values = i2v[sc.path_name(node.path)]
      return [values[i] for i in np.asarray(a).reshape(-1).tolist()]
    if isinstance(node, sc.StringNode):
      chars = np.asarray(a["chars"])
      out = []
      for row in chars:
        end = np.flatnonzero(row == END_ID)
        row = row[: end[0]] if end.size else row
        out.append("".join(i2c[row]))
      return out
    if isinstance(node, sc.FloatsNode):
      if node.key != sc.FLOATS_KEY:  # a float inside Optional[...] / list[...]
        return [float(row[0]) for row in np.asarray(a)]
      return [dict(zip(node.names, map(float, row))) for row in np.asarray(a)]
    if isinstance(node, sc.OptionalNode):
      vals = dec(node.child, a["value"])
      return [v if p >= 0.5 else None for v, p in zip(vals, np.asarray(a["present"]))]
    if isinstance(node, sc.ListNode):
      count = np.asarray(a["count"])
      n, m = count.shape[0], jax.tree.leaves(a["items"])[0].shape[1]
      flat_items = jax.tree.map(lambda x: np.asarray(x).reshape((n * m,) + x.shape[2:]), a["items"])
      vals = dec(node.child, flat_items)
      return [vals[i * m : i * m + int(count[i])] for i in range(n)]
    assert isinstance(node, sc.RecordNode)
    cols: dict[str, list[Any]] = {}
    n = None
    for c in node.children:
      vals = dec(c, a[c.key])
      n = len(vals)
      if isinstance(c, sc.FloatsNode):
        for f in c.names:
          cols[f] = [v[f] for v in vals]
      else:
        cols[c.key] = vals
    names = [f.name for f in dataclasses.fields(node.cls)]
    rows = [{k: cols[k][i] for k in names} for i in range(n or 0)]
    return rows if as_dict else [node.cls(**r) for r in rows]

  return dec(root, arrays)


def record_to_dict(record: Any) -> dict[str, Any]:
  """A dataclass record (possibly nested) as plain dicts and lists, for JSON/CSV output."""
  return dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
