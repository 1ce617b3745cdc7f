"""Shared fixtures. Compilation dominates: tiny models, compiled once per session."""

import dataclasses
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VERMONT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "vermont",
                       "alala_addresses_proto.valid.csv")


def vermont_or_skip() -> str:
  if not os.path.exists(VERMONT):
    pytest.skip(f"Vermont data not found at {os.path.abspath(VERMONT)} (../shared/data is not "
                "part of the project; the test runs where it is present)")
  return VERMONT


@dataclasses.dataclass
class Person:
  name: str
  height: float


@dataclasses.dataclass
class Tagged:
  """A record with a nested record, a list and an optional field."""
  title: str
  owner: Person
  tags: list[str]
  nickname: str | None
  x: float
  y: float
