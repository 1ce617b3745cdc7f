"""Embedded deterministic synthetic address data (the default data set, DESIGN §4).

Each zip code owns a Gaussian cluster of coordinates with its own shape (random orientation and
anisotropy, scales from ~1 km to ~10 km) inside a Vermont-sized box, one to three cities (a city
can also span two zips), and its own pool of street names, so that zip, coordinates, city and
street are correlated the way real addresses are. House numbers are log-uniform and empty in ~7%
of rows (as in the Vermont file); unit, district and region are empty, as in the Vermont file.
The same `seed` always gives the same records.
"""

from __future__ import annotations

import numpy as np

from alala_jax.schema import Address

_SYL = [
  "AL",
  "BAR",
  "BEN",
  "BRO",
  "CAM",
  "CHES",
  "DAN",
  "DER",
  "EL",
  "FAIR",
  "FER",
  "GLEN",
  "GRA",
  "HAL",
  "HAR",
  "KEN",
  "LAN",
  "LIN",
  "MAR",
  "MIL",
  "MOR",
  "NOR",
  "PEL",
  "RAN",
  "RICH",
  "ROX",
  "SHEL",
  "STO",
  "TOP",
  "WAL",
  "WEST",
  "WIN",
  "WOOD",
  "ASH",
  "BERK",
  "COL",
]
_END = ["TON", "FORD", "VILLE", "FIELD", "BURY", "LEY", "MONT", "WICK", "HAM", "BROOK", "DALE"]
_STREET_SUFFIX = ["RD", "ST", "AVE", "LN", "DR", "HILL RD", "BROOK RD", "WAY", "CIR", "PL"]
_STREET_WORDS = [
  "MAPLE",
  "OAK",
  "PINE",
  "BIRCH",
  "CEDAR",
  "RIVER",
  "LAKE",
  "MILL",
  "SCHOOL",
  "CHURCH",
  "NORTH",
  "SOUTH",
  "EAST",
  "WEST",
  "UPPER",
  "LOWER",
  "POND",
  "RIDGE",
  "MEADOW",
  "ORCHARD",
  "SUGAR",
  "BEAR",
  "FOX",
  "DEER",
  "HOLLOW",
  "VALLEY",
]


def _town_name(rng: np.random.Generator) -> str:
  return "".join(rng.choice(_SYL, size=rng.integers(1, 3))) + rng.choice(_END)


def _street_name(rng: np.random.Generator) -> str:
  kind = rng.random()
  if kind < 0.5:
    base = rng.choice(_STREET_WORDS)
  elif kind < 0.8:
    base = _town_name(rng)
  else:
    base = f"{rng.choice(_STREET_WORDS)} {rng.choice(_STREET_WORDS)}"
  return f"{base} {rng.choice(_STREET_SUFFIX)}"


def synthetic_addresses(n: int = 20000, num_zips: int = 40, seed: int = 0) -> list[Address]:
  """Generates `n` correlated synthetic addresses, deterministically from `seed`.

  Args:
    n: number of records.
    num_zips: number of zip codes (clusters).
    seed: random seed.

  Returns:
    A list of `Address` records.
  """
  rng = np.random.default_rng(seed)
  zips = sorted({f"05{z:03d}" for z in rng.choice(1000, size=num_zips, replace=False)})
  num_zips = len(zips)
  centres = np.stack([rng.uniform(42.8, 44.9, num_zips), rng.uniform(-73.3, -71.6, num_zips)], 1)
  angles = rng.uniform(0, np.pi, num_zips)
  scales = np.exp(rng.uniform(np.log(0.01), np.log(0.08), (num_zips, 2)))
  towns = [_town_name(rng) for _ in range(num_zips + num_zips // 2)]
  zip_cities = []
  for k in range(num_zips):
    m = int(rng.integers(1, 4))
    zip_cities.append([towns[k]] + list(rng.choice(towns, size=m - 1)))
  zip_streets = [
    [_street_name(rng) for _ in range(int(rng.integers(15, 60)))] for _ in range(num_zips)
  ]
  popularity = rng.dirichlet(np.full(num_zips, 2.0))

  zip_idx = rng.choice(num_zips, size=n, p=popularity)
  eps = rng.normal(size=(n, 2))
  out = []
  for i in range(n):
    k = zip_idx[i]
    c, s = np.cos(angles[k]), np.sin(angles[k])
    rot = np.array([[c, -s], [s, c]])
    lat, lon = centres[k] + rot @ (scales[k] * eps[i])
    cities = zip_cities[k]
    city = cities[0] if rng.random() < 0.7 else cities[int(rng.integers(len(cities)))]
    number = "" if rng.random() < 0.07 else str(int(np.exp(rng.uniform(0, np.log(5000)))))
    out.append(
      Address(
        lat=float(np.float32(lat)),
        long=float(np.float32(lon)),
        number=number,
        street=str(rng.choice(zip_streets[k])),
        unit="",
        city=str(city),
        district="",
        region="",
        postcode=zips[k],
      )
    )
  return out
