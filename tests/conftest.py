"""Shared fixtures. Compilation dominates: tiny models, compiled once per session."""

import dataclasses
import os
import shutil
import tempfile

# Compilation dominates this suite and XLA's CPU backend optimisations buy nothing for a few
# tiny steps: without them the test config's train step compiles in 76 s instead of 133 s
# (measured with the CPU shared; BUILD_NOTES "Test suite"). Set before jax starts its backend;
# flags the caller already set come after these and win.
# 8 host devices for the sharded-step test (tests/test_sharding.py); single-device programs
# run on device 0 as before.
# The XLA:CPU dot library is the one the experiment mains pick (`runtime.setup`: Eigen, not
# YNNPACK), unless the caller's XLA_FLAGS choose.
_FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
_DEVICES = "--xla_force_host_platform_device_count=8"
from alala_jax import runtime  # noqa: E402  (imports no jax)

os.environ["XLA_FLAGS"] = runtime.xla_flags(
  "eigen", " ".join([_FAST_COMPILE, _DEVICES, os.environ.get("XLA_FLAGS", "")]).strip()
)

# One persistent compilation cache per test run, fresh each run: many test files build the same
# programs (the test config's steps) in different processes (two xdist workers, the kill -9
# children, experiments run as subprocesses, the notebook kernel), and each compiled them again.
# The first process to import this file (the xdist controller, or pytest itself) makes the
# directory; the workers and every subprocess inherit it through the environment; the maker
# removes it at the end. Keys ignore source locations (jax strips debug info), so the same
# program built by two files is one entry; compiles under 1 s are not cached (jax's default).
# A size bound makes jax lock the directory (filelock), so two workers never read a half-written
# entry.
_JIT_CACHE_ENV = "ALALA_JAX_TEST_JIT_CACHE"
_OWN_JIT_CACHE = not os.environ.get(_JIT_CACHE_ENV)
if _OWN_JIT_CACHE:
  os.environ[_JIT_CACHE_ENV] = tempfile.mkdtemp(prefix="alala_jax_jit_cache_")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_JIT_CACHE_ENV]
os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(64 << 30)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

VERMONT = os.path.join(
  os.path.dirname(__file__),
  "..",
  "..",
  "shared",
  "data",
  "vermont",
  "alala_addresses_proto.valid.csv",
)


def vermont_or_skip() -> str:
  if not os.path.exists(VERMONT):
    pytest.skip(
      f"Vermont data not found at {os.path.abspath(VERMONT)} (../shared/data is not "
      "part of the project; the test runs where it is present)"
    )
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


N_LEVELS, B_LEVEL, D_LEVEL = 3, 6, 8  # the `small` multiscale fixture's sizes


@pytest.fixture(scope="session")
def small():
  """A 2-field record model with 3 levels of sigma-networks and latent moments: (model,
  params with stacked sigma_net, batch_stats with stacked latent_moments, level batches)."""
  from alala_jax import schema as sc
  from alala_jax.data import codec
  from alala_jax.nn import tree, vae
  from alala_jax.nn.sigma import SigmaNet

  records = [Person(name=f"n{i % 5}x", height=float(i) + 0.5 * (i % 3)) for i in range(40)]
  root = sc.parse_schema(Person)
  spec = codec.build_spec(root, records)
  arrays, _ = codec.encode(root, spec, records[: N_LEVELS * B_LEVEL])
  cfg = tree.ModelConfig(
    vocab_size=spec.vocab_size,
    max_len=tuple(sorted(spec.max_len.items())),
    latent_dim=D_LEVEL,
    char_dim=4,
  )
  model = vae.RecordVAE(root, cfg)
  k = jax.random.key(0)
  v = jax.jit(lambda a: model.init({"params": k, "latent": k, "sample": k}, a, 1.0, 1.0))(arrays)
  sig = jax.vmap(lambda kk: SigmaNet(D_LEVEL).init(kk, jnp.zeros((1, D_LEVEL)))["params"])(
    jax.random.split(jax.random.key(1), N_LEVELS)
  )
  # distinct, non-trivial last layers so that each level's sigma differs
  sig["Dense_0"]["kernel"] = 0.3 * jax.random.normal(
    jax.random.key(2), sig["Dense_0"]["kernel"].shape
  )
  params = {**v["params"], "sigma_net": sig}
  # give each level distinct latent moments and the ScalarTuple non-initial statistics
  stats = jax.tree.map(lambda a: a, v["batch_stats"])
  stats["latent_moments"] = {
    "mean": jnp.arange(N_LEVELS * D_LEVEL, dtype=jnp.float32).reshape(N_LEVELS, D_LEVEL) / 10,
    "cov": jnp.broadcast_to(jnp.eye(D_LEVEL), (N_LEVELS, D_LEVEL, D_LEVEL)),
    "count": jnp.full((N_LEVELS,), 5, jnp.int32),
  }
  stats = jax.tree.map(lambda a: a, stats)
  batches = jax.tree.map(
    lambda a: jnp.asarray(a).reshape((N_LEVELS, B_LEVEL) + a.shape[1:]), arrays
  )
  return model, params, stats, batches


@pytest.fixture(scope="session")
def small_core(small):
  """The `small` fixture on the new training core: (RecordModel, TrainState, level batches).

  The model wraps `small`'s schema and config (Tuple-level ground-truth probability 0.5); the
  TrainState holds `small`'s params (sigma_net stacked over N_LEVELS) and statistics
  (latent_moments stacked) as `model_state['batch_stats']`, no optimiser state and the empty
  objective state of a stateless objective: enough for `train.step.loss_and_grads`,
  `level_terms` and `state.level_variables` with a `Setup` of N_LEVELS levels."""
  import optax

  from alala_jax.models.record import RecordModel
  from alala_jax.train.state import TrainState

  module, params, stats, batches = small
  model = RecordModel(module.root, module.cfg, p_tuple=optax.constant_schedule(0.5))
  state = TrainState(
    step=jnp.asarray(7, jnp.int32),
    data_position=jnp.asarray(7, jnp.int32),
    params=params,
    opt_state=None,
    model_state={"batch_stats": stats},
    objective_state={},
    ema_params=None,
    key=jax.random.key_data(jax.random.key(3)),
    bad_step=jnp.full((), -1, jnp.int32),
  )
  return model, state, batches


def pytest_unconfigure(config):
  del config
  if _OWN_JIT_CACHE:
    shutil.rmtree(os.environ[_JIT_CACHE_ENV], ignore_errors=True)
