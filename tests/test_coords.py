"""Coordinate error in km and the ridge readout (alala_jax.metrics.coords)."""

import numpy as np
import pytest

from alala_jax.metrics import coords


def _haversine_km(lat1, lon1, lat2, lon2):
  p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
  a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
  return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def test_km_error_matches_the_haversine_distance_at_state_scale():
  rng = np.random.default_rng(0)
  target = np.stack([rng.uniform(42.7, 45.0, 50), rng.uniform(-73.4, -71.5, 50)], 1)
  pred = target + rng.normal(0, 0.1, target.shape)  # ~10 km apart
  got = coords.km_error(pred, target, ("lat", "long"))
  want = _haversine_km(target[:, 0], target[:, 1], pred[:, 0], pred[:, 1])
  np.testing.assert_allclose(got, want, rtol=5e-3)
  # the columns are found by name
  np.testing.assert_allclose(coords.km_error(pred[:, ::-1], target[:, ::-1], ("long", "lat")), got)
  assert np.all(np.isnan(coords.km_error(pred, target, ("x", "y"))))


@pytest.mark.parametrize("penalty", [0.0, 0.5])
def test_ridge_fit_solves_the_penalised_least_squares(penalty):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 5))
  y = x @ rng.normal(size=(5, 2)) + 3.0 + 0.1 * rng.normal(size=(200, 2))
  w, b = coords.ridge_fit(x, y, penalty)
  if penalty == 0:
    sol = np.linalg.lstsq(np.hstack([x, np.ones((200, 1))]), y, rcond=None)[0]
    np.testing.assert_allclose(w, sol[:5], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b, sol[5], rtol=1e-8)
  # the gradient of |x w + b - y|^2 / n + penalty |w|^2 vanishes at the solution
  r = x @ w + b - y
  np.testing.assert_allclose(2 * x.T @ r / 200 + 2 * penalty * w, 0, atol=1e-9)
  np.testing.assert_allclose(r.mean(0), 0, atol=1e-9)
