"""Records <-> padded numpy arrays, one array group per schema node.

Array layout (leading dims ``[...]`` are ``[B]``, or ``[B, N]`` inside a list of ``N`` items):

* `StringNode`:  ``{'chars': int32[..., T], 'length': int32[...]}`` with ``T = max_len + 1``;
  ``chars`` holds character ids, END (0) at position ``length`` and END padding after it.
  Strings are padded per field (not to one global maximum, DESIGN §5).
* `FloatsNode`:  ``float32[..., k]`` raw values in the dataclass field order.
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


@dataclasses.dataclass
class EncodeReport:
  """Counts of documented lossy handling during encoding."""

  oov_chars: int = 0
  truncated_strings: int = 0
  truncated_lists: int = 0

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

  @property
  def vocab_size(self) -> int:
    return len(self.chars) + 2

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


def build_spec(root: sc.RecordNode, records: Sequence[Any], min_len: int = 1) -> DataSpec:
  """Builds the vocabulary and per-field maximum lengths from (training) records."""
  chars: set[str] = set()
  max_len: dict[str, int] = {}
  max_items: dict[str, int] = {}

  def visit(node: sc.Node, values: list[Any]):
    name = sc.path_name(node.path)
    if isinstance(node, sc.StringNode):
      for v in values:
        if v:
          chars.update(v)
      max_len[name] = max([min_len] + [len(v) for v in values if v])
    elif isinstance(node, sc.OptionalNode):
      visit(node.child, [v for v in values if v is not None])
    elif isinstance(node, sc.ListNode):
      max_items[name] = max([1] + [len(v) for v in values if v])
      visit(node.child, [item for v in values if v for item in v])
    elif isinstance(node, sc.RecordNode):
      for c in node.children:
        if not isinstance(c, sc.FloatsNode):
          visit(c, [_get(v, c.key) for v in values])

  visit(root, list(records))
  return DataSpec(chars="".join(sorted(chars)), max_len=max_len, max_items=max_items)


def encode(
  root: sc.RecordNode, spec: DataSpec, records: Sequence[Any]
) -> tuple[dict[str, Any], EncodeReport]:
  """Encodes records (dataclass instances or nested dicts) into the array pytree.

  Returns:
    ``(arrays, report)`` where ``report`` counts out-of-vocabulary characters and truncations.
  """
  report = EncodeReport()
  c2i = spec.char_to_id()

  def enc(node: sc.Node, values: list[Any]) -> Any:
    n = len(values)
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
      for i, v in enumerate(values):
        if v is not None:
          out[i] = [_get(v, f) for f in node.names]
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

  def dec(node: sc.Node, a: Any) -> list[Any]:
    if isinstance(node, sc.StringNode):
      chars = np.asarray(a["chars"])
      out = []
      for row in chars:
        end = np.flatnonzero(row == END_ID)
        row = row[: end[0]] if end.size else row
        out.append("".join(i2c[row]))
      return out
    if isinstance(node, sc.FloatsNode):
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
