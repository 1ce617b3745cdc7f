"""Writes the record VAE's pre-refactor reference outputs (run ONCE, at commit 4101fcf, with the
`Programs` trainer that the model-interface refactor replaced; kept for the record, it does not
run on later commits).

For fixed parameters (the state `Programs.create_state(0, batch)` built), a fixed batch and a
fixed key it stores, per config: the multiscale loss and its gradients, the state after one
plain step and after one augmented step (where configured; without optimiser states), the
step metrics, records generated and reconstructed from fixed keys, and the evaluation loss.
`tests/test_record_regression.py` checks that the new core reproduces them.

  git worktree add /tmp/golden_wt 4101fcf && cp tests/golden/make_record_golden.py \
      /tmp/golden_wt/tests/golden/ && GOLDEN_OUT=$PWD/tests/golden \
      python3 /tmp/golden_wt/tests/golden/make_record_golden.py
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
os.environ["XLA_FLAGS"] = (
  "--xla_backend_optimization_level=0 "
  "--xla_llvm_disable_expensive_passes=true "
  "--xla_cpu_experimental_ynn_fusion_type="
)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from alala_jax.data import batching  # noqa: E402
from alala_jax.train import loop  # noqa: E402
from experiments.configs import test as test_config  # noqa: E402


def small_config():
  """The test config (2 levels, augmented from step 3) with latent 8 and 4-d characters, so
  the reference file stays small."""
  c = test_config.get_config()
  c.model.latent_dim = 8
  c.model.char_dim = 4
  return c


def configs():
  """name -> config: the small test config (2 levels, augmented from step 3), a plain
  1-level beta-VAE, the capacity multiscale mode, and the WAE and AAE baselines."""
  out = {"ms2_aug": small_config()}
  c = small_config()
  c.objective.multiscale.n_levels = 1
  c.objective.augmented.enabled = False
  out["plain"] = c
  c = small_config()
  c.objective.augmented.enabled = False
  c.objective.multiscale.mode = "capacity"
  out["capacity"] = c
  for kind in ("wae", "aae"):
    c = small_config()
    c.objective.multiscale.n_levels = 1
    c.objective.augmented.enabled = False
    c.objective.kind = kind
    out[kind] = c
  return out


def flat(prefix, tree, out):
  """Stores the leaves of `tree` under '<prefix><keystr>' (optimiser states are not stored:
  the initial one is a fresh init, later ones follow from the stored gradients)."""
  if hasattr(tree, "opt_state"):
    tree = tree.replace(opt_state=())
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    out[prefix + jax.tree_util.keystr(path)] = np.asarray(jax.device_get(leaf))


def main():
  out = {}
  for name, config in configs().items():
    print("config", name, flush=True)
    prep = loop.prepare(config)
    p = prep.programs
    b0 = batching.batch_at(prep.train_arrays, 0, 16, 0)
    state = p.create_state(0, b0)
    state = state.replace(step=state.step + 3)  # schedules mid-run (beta > 0, p < 1)
    flat(f"{name}/state0", state, out)
    flat(f"{name}/batch0", b0, out)
    (loss, (terms, stats, vout)), grads = jax.jit(
      lambda s, b: p.loss_and_grads(s, p.levels.split(b))
    )(state, b0)
    out[f"{name}/loss"] = np.asarray(loss)
    flat(f"{name}/grads", grads, out)
    flat(f"{name}/stats_after_loss", stats, out)
    out[f"{name}/z"] = np.asarray(vout.z)
    gen = p.generate(p.variables(state), jax.random.key(42), 8, False)
    flat(f"{name}/generated", gen, out)
    gen_g = p.generate(p.variables(state), jax.random.key(43), 8, True)
    flat(f"{name}/generated_greedy", gen_g, out)
    rec = p.reconstruct(p.variables(state), jax.random.key(44), b0, False)
    flat(f"{name}/reconstructed", rec, out)
    ev = p.eval_loss(state, b0, 1000)
    flat(f"{name}/eval_loss", ev, out)
    state1, metrics1, _ = p.step_fn(0)(jax.tree.map(lambda a: a.copy(), state), b0)
    flat(f"{name}/state1", state1, out)
    flat(f"{name}/metrics1", metrics1, out)
    if p.aug is not None:
      b1 = batching.batch_at(prep.train_arrays, 1, 16, 0)
      flat(f"{name}/batch1", b1, out)
      state2, metrics2, _ = p.train_step_augmented(state1, b1)
      flat(f"{name}/state2", state2, out)
      flat(f"{name}/metrics2", metrics2, out)
  path = os.path.join(os.environ.get("GOLDEN_OUT", HERE), "record_vae_4101fcf.npz")
  np.savez_compressed(path, **out)
  print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
  main()
