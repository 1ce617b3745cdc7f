"""TrainState, optimiser and the jit-compiled programs (train step, losses, generation).

Every step is compiled once (fixed shapes, static model), donates the old state's buffers, and
derives its randomness as ``fold_in(key, step)``. A non-finite loss or gradient never updates
the parameters: the step records the first bad step in ``state.bad_step`` and keeps the old
state from then on, so a checkpoint can never hold corrupt parameters; the loop stops the run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from alala_jax import schema as sc
from alala_jax.data import codec
from alala_jax.nn import tree
from alala_jax.nn.sigma import SigmaNet
from alala_jax.nn.vae import RecordVAE
from alala_jax.objectives import aae as aae_lib
from alala_jax.objectives import augmented as augmented_lib
from alala_jax.objectives import elbo
from alala_jax.objectives import multiscale
from alala_jax.objectives import schedules


@struct.dataclass
class TrainState:
  step: jax.Array         # [] int32
  params: Any             # params['sigma_net'] stacked on the level axis [n_levels, ...]
  opt_state: Any
  batch_stats: Any        # ScalarTuple moving mean/cov (shared) and per-level moving mean/cov
                          # of the sampled latents (batch_stats['latent_moments'] [n_levels, ..])
  objective_state: Any    # state of a stateful objective: augmented latents [n_levels, n, D],
                          # or the AAE's discriminator and its optimiser state
  key: jax.Array          # [2] uint32 raw key data (orbax-friendly); wrap with wrap_key_data
  bad_step: jax.Array     # [] int32: first step with a non-finite loss/gradient, -1 if none


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
                          tuple_type=model_cfg.tuple_type,
                          string_scan=model_cfg.get("string_scan", "field"),
                          gru_remat=model_cfg.get("gru_remat", "none"))


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


@dataclasses.dataclass(frozen=True)
class ObjectiveSetup:
  """What `config.objective` resolves to (validated): schedules, the level axis, the loss
  mode, augmented training (None if off) with its per-level p_sampled and start step, and
  the AAE's adversarial objective (None unless objective.kind is 'aae')."""
  sched: Schedules
  levels: multiscale.Levels
  mode: str
  aug: augmented_lib.AugmentedObjective | None
  level_p: Any
  gen_start_step: int | None
  adv: aae_lib.AdversarialObjective | None = None


def resolve_objective(config) -> ObjectiveSetup:
  """Validates and resolves `config.objective` against `config.train` (clear errors for
  batch/level splits, inverted weights at beta 0, WAE/AAE combined with other objectives)."""
  obj = config.objective
  levels = multiscale.Levels.from_config(obj.get("multiscale"))
  per_level = levels.per_level_batch(config.train.batch_size)   # raises on an uneven split
  if levels.mode == "inverted" and min(_beta_extremes(obj)) <= 0:
    raise ValueError("multiscale.mode 'inverted' divides the reconstruction loss by beta_i "
                     f"(Eq 8): beta must stay > 0, got the schedule {_beta_extremes(obj)}")
  aug = obj.get("augmented")
  kind = obj.get("kind", "vae")
  if kind not in ("vae",) + elbo.DETERMINISTIC_MODES:
    raise ValueError(f"unknown objective.kind {kind!r}: expected 'vae', 'wae' or 'aae'")
  if kind != "vae" and (levels.n > 1 or (aug is not None and aug.enabled)):
    raise ValueError(f"the {kind.upper()} baseline (objective.kind {kind!r}, App H-I) runs "
                     "alone: set multiscale.n_levels = 1 and augmented.enabled = False")
  aug_obj, level_p, gen_start = None, None, None
  if aug is not None and aug.enabled:
    n_aug = aug.n_augmented or config.train.batch_size
    if n_aug % levels.n:
      raise ValueError(f"n_augmented {n_aug} does not split evenly over {levels.n} levels")
    aug_obj = augmented_lib.augmented(n_aug // levels.n, aug.p_sampled)
    if aug_obj.n_augmented > per_level:
      raise ValueError(f"{aug_obj.n_augmented} augmented latents per level exceed the "
                       f"{per_level} real rows per level "
                       "they are re-drawn from (without replacement)")
    level_p = multiscale.level_p_sampled(levels.n, aug.get("p_min", aug.p_sampled),
                                         aug.p_sampled, aug.get("p_spacing", "constant"))
    gen_start = max(1, int(round(aug.gen_start_fraction * config.train.num_steps)))
  adv = (aae_lib.adversarial(make_optimizer(config.optim), config.model.latent_dim)
         if kind == "aae" else None)
  return ObjectiveSetup(Schedules.from_config(obj, config.train.num_steps), levels,
                        levels.mode if kind == "vae" else kind, aug_obj, level_p, gen_start,
                        adv)


class Programs:
  """The jit-compiled functions of one model/config. Build once, call many times.

  Every step runs over the level axis of `objectives.multiscale` (one level for the plain
  beta-VAE): the batch is split into per-level batches (or shared, App L4), and generation,
  reconstruction and the logged eval/generated losses use level `levels.gen_level`.
  """

  def __init__(self, root: sc.RecordNode, spec: codec.DataSpec, config):
    self.root, self.spec, self.config = root, spec, config
    self.model = RecordVAE(root, model_config(spec, config.model))
    self.tx = make_optimizer(config.optim)
    setup = resolve_objective(config)
    self.sched, self.levels, self.mode = setup.sched, setup.levels, setup.mode
    self.aug, self.level_p, self.gen_start_step = setup.aug, setup.level_p, setup.gen_start_step
    self.adv = setup.adv
    self.train_step = jax.jit(self._train_step, donate_argnums=0)
    self.train_step_augmented = jax.jit(self._train_step_augmented, donate_argnums=0)
    self.eval_loss = jax.jit(self._eval_loss)
    self.generated_loss = jax.jit(self._generated_loss, static_argnums=2)
    self.generate = jax.jit(self._generate, static_argnums=(2, 3))
    self.reconstruct = jax.jit(self._reconstruct, static_argnums=3)
    self.encode_mean = jax.jit(self._encode_mean)
    self.decode_latents = jax.jit(self._decode_latents, static_argnums=3)
    self.init = jax.jit(self._init)

  def step_fn(self, step: int):
    """The compiled step for `step`: augmented from `gen_start_step` on, if configured."""
    if self.aug is not None and step >= self.gen_start_step:
      return self.train_step_augmented
    return self.train_step

  def variables(self, state: TrainState, level: int | None = None) -> dict:
    """Single-level model variables (level `levels.gen_level` by default)."""
    return multiscale.level_variables(state.params, state.batch_stats,
                                      self.levels.gen_level if level is None else level)

  def _init(self, key: jax.Array, batch) -> TrainState:
    k_params, k_latent, k_sample, k_sigma = jax.random.split(key, 4)
    variables = self.model.init({"params": k_params, "latent": k_latent, "sample": k_sample},
                                batch, 1.0, 1.0, train=True)
    n, cfg = self.levels.n, self.model.cfg
    sigma = jax.vmap(lambda k: SigmaNet(cfg.latent_dim, cfg.sigma_layers).init(
        k, jnp.zeros((1, cfg.latent_dim)))["params"])(jax.random.split(k_sigma, n))
    params = {**variables["params"], multiscale.LEVEL_PARAMS: sigma}
    chex.assert_trees_all_equal_structs(sigma, variables["params"][multiscale.LEVEL_PARAMS])
    stats = variables["batch_stats"]
    stats = {**stats, multiscale.LEVEL_STATS: jax.tree.map(
        lambda a: jnp.broadcast_to(a, (n,) + a.shape), stats[multiscale.LEVEL_STATS])}
    obj_state = ()
    if self.aug:
      obj_state = jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape),
                               self.aug.init(cfg.latent_dim))
    if self.adv:
      obj_state = self.adv.init(jax.random.fold_in(key, 5), cfg.latent_dim)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=self.tx.init(params), batch_stats=stats,
                      objective_state=obj_state, key=jax.random.key_data(key),
                      bad_step=jnp.full((), -1, jnp.int32))

  def create_state(self, seed: int, example_batch) -> TrainState:
    """A fresh TrainState, committed to the default device: orbax restores committed arrays,
    and jit caches committed and uncommitted arguments separately, so a state that was not
    committed would make every step compile again after a resume."""
    state = self.init(jax.random.key(seed), example_batch)
    return jax.device_put(state, jax.sharding.SingleDeviceSharding(jax.devices()[0]))

  def _step_key(self, state: TrainState, salt: int = 0) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(state.key), salt),
                              state.step)

  def _adversary(self, state: TrainState):
    """z -> [B] the AAE's adversarial cross-entropy under the current discriminator."""
    if self.adv is None:
      return None
    return lambda z: self.adv.generator_loss(state.objective_state, z)

  def loss_and_grads(self, state: TrainState, level_batches, stats_mask=None):
    """The step's multiscale loss and its gradients w.r.t. the parameters (traceable):
    ((loss, (per-level terms, updated batch_stats, per-level VAEOut)), grads)."""
    lv = self.levels
    beta_max, p_tuple, p_string = self.sched.at(state.step)
    grad_fn = jax.value_and_grad(multiscale.multiscale_loss, argnums=1, has_aux=True)
    return grad_fn(self.model, state.params, state.batch_stats, level_batches,
                   jax.random.split(self._step_key(state), lv.n), lv.betas(beta_max), lv.caps(),
                   p_tuple, p_string, True, self.mode, lv.gamma, stats_mask,
                   self._adversary(state))

  def _gradient_step(self, state: TrainState, level_batches, stats_mask, objective_update
                     ) -> tuple[TrainState, dict, dict]:
    """One optimiser step on the level batches [n, rows, ...]; `objective_update(out, key)`
    gives the new objective state and its metrics from the VAE outputs. Non-finite
    loss/gradients freeze the state (module doc).

    Returns:
      (new state, scalar metrics, aux) with aux = {'z': sampled latents [n, rows, D],
      'mu': posterior means [n, rows, D]} of the rows trained on (left on device).
    """
    lv = self.levels
    beta_max, p_tuple, p_string = self.sched.at(state.step)
    (loss, (terms, new_stats, out)), grads = self.loss_and_grads(state, level_batches,
                                                                 stats_mask)
    updates, new_opt = self.tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    new_obj, obj_metrics = objective_update(jax.tree.map(jax.lax.stop_gradient, out),
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
    metrics = {"loss": loss, "recon": jnp.mean(terms.recon), "kl": jnp.mean(terms.latent),
               "bpc": jnp.mean(terms.bpc), "beta": beta_max, "p_tuple": p_tuple,
               "p_string": p_string, "grad_norm": optax.tree.norm(grads),
               **{"field/" + k: jnp.mean(v) for k, v in terms.fields.items()}, **obj_metrics}
    if lv.n > 1:   # the two ends of the level axis
      metrics.update({"kl/level0": terms.latent[0], f"kl/level{lv.n - 1}": terms.latent[-1],
                      "recon/level0": terms.recon[0],
                      f"recon/level{lv.n - 1}": terms.recon[-1]})
    return new_state, metrics, {"z": out.z, "mu": out.mu}

  def _train_step(self, state: TrainState, batch) -> tuple[TrainState, dict, dict]:
    """The (multiscale) beta-VAE step; with augmented training configured it also seeds
    z_aug from each level's batch; the AAE baseline also takes a discriminator step."""
    if self.adv is not None:
      update = lambda out, key: self.adv.update(state.objective_state, out.z[0], key)
    elif self.aug is None:
      update = lambda out, key: (state.objective_state, {})
    else:
      update = lambda out, key: (jax.vmap(self.aug.seed)(state.objective_state, out.z), {})
    return self._gradient_step(state, self.levels.split(batch), None, update)

  def augmented_batch(self, state: TrainState, batch):
    """Per level: its real batch + variants x' = g(z_aug) (sampled decoding), and the
    real-row mask. Returns ([n, b + n_aug, ...], [n, b + n_aug])."""
    real = self.levels.split(batch)
    z = state.objective_state.z                                     # [n, m, D]
    n, m = z.shape[:2]
    variants = self._decode_latents(self.variables(state), z.reshape((n * m,) + z.shape[2:]),
                                    self._step_key(state, 4))
    full = jax.tree.map(
        lambda a, v: jnp.concatenate([a, v.reshape((n, m) + v.shape[1:]).astype(a.dtype)], 1),
        real, variants)
    b = jax.tree.leaves(real)[0].shape[1]
    mask = jnp.concatenate([jnp.ones((n, b), jnp.float32), jnp.zeros((n, m), jnp.float32)], 1)
    return full, mask

  def _train_step_augmented(self, state: TrainState, batch) -> tuple[TrainState, dict, dict]:
    """Augmented training step (paper 000 Sec 5; per level with its own p_sampled, App K):
    train on real + generated variants, then re-draw z_aug from sampled latents of real rows
    (p_sampled) or of the variants."""
    if self.aug is None:
      raise ValueError("augmented training is not enabled in config.objective.augmented")
    full, mask = self.augmented_batch(state, batch)
    b = mask.shape[1] - self.aug.n_augmented                      # real rows per level

    def update(out, key):
      keys = jax.random.split(key, self.levels.n)
      return jax.vmap(self.aug.update)(state.objective_state, out.z[:, :b], out.z[:, b:], keys,
                                       jnp.asarray(self.level_p)), {}
    return self._gradient_step(state, full, mask, update)

  def _eval_loss(self, state: TrainState, batch, salt) -> dict:
    """Loss of a batch at level `gen_level` under the current schedules (its beta_i and loss
    mode), without updating any statistics."""
    lv = self.levels
    beta_max, p_tuple, p_string = self.sched.at(state.step)
    v = self.variables(state)
    caps = lv.caps()
    loss, (terms, _, _) = elbo.vae_loss(
        self.model, v["params"], v["batch_stats"], batch, self._step_key(state, salt),
        lv.betas(beta_max)[lv.gen_level], p_tuple, p_string, False, mode=self.mode,
        capacity=0.0 if caps is None else caps[lv.gen_level], gamma=lv.gamma,
        adversary=self._adversary(state))
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
    sample = self._generate(self.variables(state), key, n, False)
    return self._eval_loss(state, sample, salt + 1)

  def _encode_mean(self, variables, batch):
    """Posterior means mu(x) [B, D]."""
    return self.model.apply(variables, batch, method=RecordVAE.encode)["emb"]

  def _reconstruct(self, variables, key, batch, greedy: bool):
    return self.model.apply(variables, batch, greedy, method=RecordVAE.reconstruct,
                            rngs={"sample": key})


def _beta_extremes(obj) -> tuple[float, ...]:
  """The beta values a schedule passes through at its ends (for the inverted-weights check)."""
  if obj.beta_schedule == "constant":
    return (obj.beta_end,)
  if obj.beta_schedule == "linear":
    return (obj.beta_start, obj.beta_end)
  return (obj.beta_start, obj.beta_mid, obj.beta_end)
