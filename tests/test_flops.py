import jax
import jax.numpy as jnp
import pytest

from alala_jax.train import flops


def test_scan_body_is_multiplied_by_length():
  a = jnp.ones((8, 16))
  w = jnp.ones((16, 16))

  def f(x):
    def body(c, _):
      return jnp.tanh(c @ w), None

    return jax.lax.scan(body, x, None, length=7)[0]

  assert flops.matmul_flops(f, a) == 7 * 2 * 8 * 16 * 16
  # the gradient: forward + two matmuls per step in the backward pass
  g = jax.grad(lambda x: jnp.sum(f(x)))
  assert flops.matmul_flops(g, a) == 7 * 2 * 8 * 16 * 16 * 2


def test_batched_dot_and_nested_jit():
  x, y = jnp.ones((3, 4, 5)), jnp.ones((3, 5, 6))
  f = jax.jit(lambda a, b: jnp.einsum("bij,bjk->bik", a, b))
  assert flops.matmul_flops(lambda a, b: f(a, b) + 1, x, y) == 2 * 3 * 4 * 5 * 6


def test_dead_work_is_not_counted():
  """A scan whose result no output uses costs nothing (XLA removes it); dce=False counts it."""
  a, w = jnp.ones((8, 16)), jnp.ones((16, 16))

  def f(x):
    dead = jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=5)[0]
    del dead
    return jnp.tanh(x @ w)

  live = 2 * 8 * 16 * 16
  assert flops.matmul_flops(jax.jit(f), a) == live
  assert flops.matmul_flops(jax.jit(f), a, dce=False) == 6 * live


def test_while_loop_is_refused():
  with pytest.raises(ValueError, match="while"):
    flops.matmul_flops(
      lambda x: jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] @ c[1]), (0, x))[
        1
      ],
      jnp.ones((2, 2)),
    )
