"""TrainState, optimiser and the jit-compiled programs (train step, losses, generation).

Every step is compiled once (fixed shapes, static model), donates the old state's buffers, and
derives its randomness as ``fold_in(key, step)``. A non-finite loss or gradient never updates
the parameters: the step records the first bad step in ``state.bad_step`` and keeps the old
state from then on, so a checkpoint can never hold corrupt parameters; the loop stops the run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from alala_jax import schema as sc
from alala_jax.data import codec
from alala_jax.nn import tree
from alala_jax.nn.vae import RecordVAE
from alala_jax.objectives import augmented as augmented_lib
from alala_jax.objectives import elbo
from alala_jax.objectives import schedules


@struct.dataclass
class TrainState:
  step: jax.Array         # [] int32
  params: Any
  opt_state: Any
  batch_stats: Any        # ScalarTuple moving mean/cov and sampled-latent moving mean/cov
  objective_state: Any    # state of a stateful objective (augmented latents), () if none
  key: jax.Array          # [2] uint32 raw key data (orbax-friendly); wrap with wrap_key_data
  bad_step: jax.Array     # [] int32: first step with a non-finite loss/gradient, -1 if none

  @property
  def variables(self):
    return {"params": self.params, "batch_stats": self.batch_stats}


def make_optimizer(optim_cfg) -> optax.GradientTransformation:
  """Adam 2.5e-4 (b1 0.9, b2 0.999, eps 1e-8), lr x 0.99 per 1000 steps (continuous), global-norm
  clip 0.01 (paper 000 Sec 2.4)."""
  lr = optax.exponential_decay(optim_cfg.learning_rate, optim_cfg.decay_steps,
                               optim_cfg.decay_rate, staircase=False)
  return optax.chain(optax.clip_by_global_norm(optim_cfg.clip_norm),
                     optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))


def model_config(spec: codec.DataSpec, model_cfg) -> tree.ModelConfig:
  return tree.ModelConfig(vocab_size=spec.vocab_size,
                          max_len=tuple(sorted(spec.max_len.items())),
                          max_items=tuple(sorted(spec.max_items.items())),
                          latent_dim=model_cfg.latent_dim, char_dim=model_cfg.char_dim,
                          tuple_type=model_cfg.tuple_type)


@dataclasses.dataclass(frozen=True)
class Schedules:
  beta: Callable
  p_tuple: Callable
  p_string: Callable

  @classmethod
  def from_config(cls, obj_cfg, num_steps: int) -> "Schedules":
    return cls(
        beta=schedules.beta_schedule(obj_cfg.beta_schedule, num_steps, obj_cfg.beta_start,
                                     obj_cfg.beta_mid, obj_cfg.beta_end,
                                     obj_cfg.warmup_fraction, obj_cfg.cooldown_fraction),
        p_tuple=schedules.teacher_schedule(obj_cfg.tuple_scheme, num_steps, obj_cfg.ss_fraction),
        p_string=schedules.teacher_schedule(obj_cfg.string_scheme, num_steps,
                                            obj_cfg.ss_fraction))

  def at(self, step):
    return self.beta(step), self.p_tuple(step), self.p_string(step)


def _all_finite(tree_) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree_)]))


class Programs:
  """The jit-compiled functions of one model/config. Build once, call many times."""

  def __init__(self, root: sc.RecordNode, spec: codec.DataSpec, config):
    self.root, self.spec, self.config = root, spec, config
    self.model = RecordVAE(root, model_config(spec, config.model))
    self.tx = make_optimizer(config.optim)
    self.sched = Schedules.from_config(config.objective, config.train.num_steps)
    aug = config.objective.get("augmented")
    self.aug = None
    self.gen_start_step = None
    if aug is not None and aug.enabled:
      self.aug = augmented_lib.augmented(aug.n_augmented or config.train.batch_size,
                                         aug.p_sampled)
      self.gen_start_step = max(1, int(round(aug.gen_start_fraction * config.train.num_steps)))
    self.train_step = jax.jit(self._train_step, donate_argnums=0)
    self.train_step_augmented = jax.jit(self._train_step_augmented, donate_argnums=0)
    self.eval_loss = jax.jit(self._eval_loss)
    self.generated_loss = jax.jit(self._generated_loss, static_argnums=2)
    self.generate = jax.jit(self._generate, static_argnums=(2, 3))
    self.reconstruct = jax.jit(self._reconstruct, static_argnums=3)
    self.init = jax.jit(self._init)

  def step_fn(self, step: int):
    """The compiled step for `step`: augmented from `gen_start_step` on, if configured."""
    if self.aug is not None and step >= self.gen_start_step:
      return self.train_step_augmented
    return self.train_step

  def _init(self, key: jax.Array, batch) -> TrainState:
    k_params, k_latent, k_sample = jax.random.split(key, 3)
    variables = self.model.init({"params": k_params, "latent": k_latent, "sample": k_sample},
                                batch, 1.0, 1.0, train=True)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=self.tx.init(params), batch_stats=variables["batch_stats"],
                      objective_state=(self.aug.init(self.model.cfg.latent_dim)
                                       if self.aug else ()),
                      key=jax.random.key_data(key), bad_step=jnp.full((), -1, jnp.int32))

  def create_state(self, seed: int, example_batch) -> TrainState:
    return self.init(jax.random.key(seed), example_batch)

  def _step_key(self, state: TrainState, salt: int = 0) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(state.key), salt),
                              state.step)

  def _gradient_step(self, state: TrainState, batch, stats_mask, objective_update
                     ) -> tuple[TrainState, dict, dict]:
    """One optimiser step on `batch`; `objective_update(out, key)` gives the new objective
    state from the VAE outputs. Non-finite loss/gradients freeze the state (module doc).

    Returns:
      (new state, scalar metrics, aux) with aux = {'z': sampled latents [rows, D],
      'mu': posterior means [rows, D]} of the rows trained on (left on device).
    """
    beta, p_tuple, p_string = self.sched.at(state.step)
    grad_fn = jax.value_and_grad(elbo.vae_loss, argnums=1, has_aux=True)
    (loss, (terms, new_stats, out)), grads = grad_fn(
        self.model, state.params, state.batch_stats, batch, self._step_key(state), beta,
        p_tuple, p_string, True, stats_mask)
    updates, new_opt = self.tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    new_obj = objective_update(jax.tree.map(jax.lax.stop_gradient, out),
                               self._step_key(state, 3))
    finite = jnp.isfinite(loss) & _all_finite(grads)
    ok = finite & (state.bad_step < 0)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    new_state = state.replace(
        step=state.step + 1,
        params=keep(new_params, state.params),
        opt_state=keep(new_opt, state.opt_state),
        batch_stats=keep(new_stats, state.batch_stats),
        objective_state=keep(new_obj, state.objective_state),
        bad_step=jnp.where(~finite & (state.bad_step < 0), state.step, state.bad_step))
    metrics = {"loss": loss, "recon": terms.recon, "kl": terms.latent, "bpc": terms.bpc,
               "beta": beta, "p_tuple": p_tuple, "p_string": p_string,
               "grad_norm": optax.tree.norm(grads),
               **{"field/" + k: v for k, v in terms.fields.items()}}
    return new_state, metrics, {"z": out.z, "mu": out.mu}

  def _train_step(self, state: TrainState, batch) -> tuple[TrainState, dict, dict]:
    """The beta-VAE step; with augmented training configured it also seeds z_aug."""
    if self.aug is None:
      update = lambda out, key: state.objective_state
    else:
      update = lambda out, key: self.aug.seed(state.objective_state, out.z)
    return self._gradient_step(state, batch, None, update)

  def augmented_batch(self, state: TrainState, batch):
    """Real batch + variants x' = g(z_aug) (sampled decoding), and the real-row mask."""
    variants = self._decode_latents(state.variables, state.objective_state.z,
                                    self._step_key(state, 4))
    full = jax.tree.map(lambda a, b: jnp.concatenate([a, b.astype(a.dtype)], 0), batch,
                        variants)
    b = jax.tree.leaves(batch)[0].shape[0]
    mask = jnp.concatenate([jnp.ones((b,), jnp.float32),
                            jnp.zeros((self.aug.n_augmented,), jnp.float32)])
    return full, mask

  def _train_step_augmented(self, state: TrainState, batch) -> tuple[TrainState, dict, dict]:
    """Augmented training step (paper 000 Sec 5): train on real + generated variants, then
    re-draw z_aug from sampled latents of real rows (p_sampled) or of the variants."""
    if self.aug is None:
      raise ValueError("augmented training is not enabled in config.objective.augmented")
    full, mask = self.augmented_batch(state, batch)
    b = jax.tree.leaves(batch)[0].shape[0]
    update = lambda out, key: self.aug.update(state.objective_state, out.z[:b], out.z[b:], key)
    return self._gradient_step(state, full, mask, update)

  def _eval_loss(self, state: TrainState, batch, salt) -> dict:
    """Loss of a batch under the current schedules, without updating any statistics."""
    beta, p_tuple, p_string = self.sched.at(state.step)
    loss, (terms, _, _) = elbo.vae_loss(self.model, state.params, state.batch_stats, batch,
                                        self._step_key(state, salt), beta, p_tuple, p_string,
                                        False)
    return {"loss": loss, "recon": terms.recon, "kl": terms.latent, "bpc": terms.bpc}

  def _generate(self, variables, key, n: int, greedy: bool):
    k_latent, k_sample = jax.random.split(key)
    return self.model.apply(variables, n, greedy, method=RecordVAE.generate,
                            rngs={"latent": k_latent, "sample": k_sample})

  def _decode_latents(self, variables, z, key, greedy: bool = False):
    return self.model.apply(variables, z, greedy, method=RecordVAE.decode_latents,
                            rngs={"sample": key})

  def _generated_loss(self, state: TrainState, salt, n: int) -> dict:
    """Generated loss (Sec 4): the loss of freshly generated records, as if they were data."""
    key = self._step_key(state, salt)
    sample = self._generate(state.variables, key, n, False)
    return self._eval_loss(state, sample, salt + 1)

  def _reconstruct(self, variables, key, batch, greedy: bool):
    return self.model.apply(variables, batch, greedy, method=RecordVAE.reconstruct,
                            rngs={"sample": key})
