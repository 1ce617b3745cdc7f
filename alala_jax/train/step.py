"""One pure train step for every model and objective (DESIGN §0; flax lm1b's `train_step`).

  train_step(state, batch, *, setup, phase) -> (state, metrics, aux)

1. The batch [B, ...] is split into per-level batches [n, B/n, ...] (`Levels.split`) and the
   objective may extend them (`Objective.prepare`: augmented variants) with a real-row mask.
2. Per level, under `over_levels` (vmap): the model updates its data statistics, encodes,
   samples z (the posterior mean for a deterministic encoder), tracks the latents, and
   returns its raw terms; the objective weighs them at that `Level`.
3. One optimiser step on the mean of the level losses; the objective's `update` runs on the
   stop-gradient terms; EMA parameters follow.
4. A non-finite loss, gradient or objective state applies nothing: the optimiser skips the
   update (`optax.apply_if_finite`, which counts it; a non-finite loss poisons the gradients
   first), parameters, optimiser, statistics and objective states keep their values, and
   `state.bad_step` records the first such step. The loop stops the run at its next check
   (every `log_every` steps); steps between a bad step and that check train normally.

`phase` ('train', 'augmented', ...) and `update` ('all', 'encoder', 'decoder') are static: each
is one compiled program. The objective's `phase_at(step)` and the run's strategy
(`train/strategies.py`: plain, or aggressive training's encoder-only inner loop) tell the loop
which to run.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from alala_jax.models.base import DECODER, ENCODER, non_params
from alala_jax.objectives import multiscale
from alala_jax.objectives.base import Level, Terms
from alala_jax.train import optim, validation
from alala_jax.train.state import Salt, Setup, TrainState, level_variables, step_key


def _all_finite(tree_) -> jax.Array:
  leaves = [
    jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree_) if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def level_terms(
  setup: Setup, variables: dict, x: Any, row_mask, key: jax.Array, step, *, train: bool
) -> tuple[Terms, dict, dict]:
  """The model's terms on one level's batch, its updated non-gradient collections and the
  refinement's metrics (SVI losses; {} without refinement). With a refinement the posterior
  is the refined q_K (alala_jax/refine.py); without one, a model with `fused_terms` computes
  the four terms in one pass (models/base.py)."""
  model = setup.model
  k_z, k_recon = jax.random.split(key)
  if train:
    variables = {**variables, **model.update_stats(variables, x, row_mask)}
  encoder_loss, refine_metrics = None, {}
  if (
    model.fused_terms is not None and setup.refinement is None and not setup.objective.deterministic
  ):
    # one pass (models/base.py): e.g. paper 002's dropout inside q and p(z)
    posterior, z, recon, kl = model.fused_terms(variables, x, key, step=step, train=train)
    if train:
      variables = {**variables, **model.track_latents(variables, z, row_mask)}
  else:
    posterior, aux = model.encode(variables, x)
    if setup.refinement is not None:  # SA-VAE & co (alala_jax/refine.py); its own key
      posterior, encoder_loss, refine_metrics = setup.refinement.apply(
        model,
        variables,
        x,
        aux,
        posterior,
        jax.random.fold_in(key, REFINE_SALT),
        step=step,
        train=train,
      )
    if setup.objective.deterministic:
      z = posterior.mean
    else:
      z = model.reparameterize(variables, posterior, k_z)
    if train:
      variables = {**variables, **model.track_latents(variables, z, row_mask)}
    recon = model.recon(variables, x, z, aux, key=k_recon, step=step, train=train)
    kl = model.kl(posterior, z)
  terms = Terms(
    recon=recon,
    kl=kl,
    z=z,
    posterior=posterior,
    row_mask=row_mask,
    kl_scale=model.kl_scale,
    encoder_loss=encoder_loss,
  )
  return terms, non_params(variables), refine_metrics


def term_metrics(setup: Setup, terms: Terms, step) -> dict:
  """Batch means of a level's terms: 'recon' (the training reconstruction), 'nll', 'kl' in
  the model's beta units (KL x kl_scale: per latent dim for the record VAE), 'kl_nats',
  'units' (the model's loss units per row: 1, or tokens for text),
  per-field terms as 'field/<name>', and the model's `batch_metrics`."""
  kl = jnp.mean(terms.kl_total())
  m = {
    "recon": jnp.mean(terms.recon.loss),
    "nll": jnp.mean(terms.recon.nll),
    "kl": kl * terms.kl_scale,
    "kl_nats": kl,
    "units": jnp.mean(setup.model.units(terms.recon)),
    **{"field/" + k: jnp.mean(v) for k, v in terms.recon.fields.items()},
  }
  m.update(setup.model.batch_metrics(terms.recon, step))
  return m


def _level_loss(
  setup: Setup, step, shared_vars, level_vars, obj_state, x, row_mask, key, level: Level
):
  variables = multiscale.merge_collections(shared_vars, level_vars)
  terms, new_state, refine_metrics = level_terms(
    setup, variables, x, row_mask, key, step, train=True
  )
  loss, metrics = setup.objective.loss(obj_state, terms, step=step, level=level)
  metrics = {**term_metrics(setup, terms, step), **metrics, **refine_metrics}
  if terms.encoder_loss is not None:  # over the real rows (augmented variants excluded)
    mask = jnp.ones_like(terms.encoder_loss) if row_mask is None else row_mask
    enc = jnp.sum(terms.encoder_loss * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    loss, metrics = loss + enc, {**metrics, "encoder_loss": enc}
  return loss, ({**metrics, "loss": loss}, new_state, terms)


def _level_keys(key: jax.Array, n: int) -> jax.Array:
  """One key per level; a single level uses the key itself."""
  return key[None] if n == 1 else jax.random.split(key, n)


def loss_and_grads(setup: Setup, state: TrainState, level_batches, row_mask, key=None):
  """The level-mean loss and its gradients w.r.t. the parameters (traceable); `key` defaults
  to the step's `Salt.LOSS` key.

  Returns ((loss, (per-level metrics [n], new model_state, per-level Terms [n])), grads)."""
  n = setup.levels.n
  declared = setup.model.level_collections
  levels = setup.levels.level_args()
  keys = jax.random.split(step_key(state, Salt.LOSS) if key is None else key, n)
  mask_axis = None if row_mask is None else 0

  def loss_fn(params):
    shared, per_level = multiscale.split_collections(state.variables(params), declared)
    fn = multiscale.over_levels(
      functools.partial(_level_loss, setup, state.step), n, (None, 0, 0, 0, mask_axis, 0, 0)
    )
    losses, (metrics, new_state, terms) = fn(
      shared, per_level, state.objective_state, level_batches, row_mask, keys, levels
    )
    return jnp.mean(losses), (metrics, new_state, terms)

  (loss, (metrics, new_state, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
    state.params
  )
  # per-level updates of shared statistics are averaged; declared entries keep their level
  shared_new, level_new = multiscale.split_collections(new_state, declared)
  merged = multiscale.merge_collections(multiscale.merge_shared_updates(shared_new), level_new)
  return (loss, (metrics, merged, terms)), grads


UPDATES = {"all": (1, 1), ENCODER: (0, 1), DECODER: (1, 0)}  # update -> (step, position) +=
REFINE_SALT = 7  # the refinement's key: fold_in(the level's loss key, REFINE_SALT)


def _keys(state: TrainState, update: str):
  """salt -> the step's key; an encoder-only step (many per `step`) also folds in the data
  position, so that every inner step of aggressive training draws its own latents."""
  if update == ENCODER:
    return lambda salt: jax.random.fold_in(step_key(state, salt), state.data_position)
  return lambda salt: step_key(state, salt)


def train_step(
  state: TrainState,
  batch: Any,
  *,
  setup: Setup,
  phase: str,
  update: str = "all",
  means: bool = True,
) -> tuple[TrainState, dict, dict]:
  """One optimiser step (module doc).

  Args:
    state: the TrainState (donated by the Trainer's jit).
    batch: the step's batch [B, ...].
    setup: model, objective, optimiser, levels (static).
    phase: the objective's phase (static).
    update: 'all'; 'encoder' or 'decoder' updates that half of the model's partition alone,
      keeping the other half's optimiser state (needs separate states, `optim.restrict_update`).
      Counters (`UPDATES`): 'all' advances step and data_position; 'encoder' (an inner step of
      aggressive training) consumes a batch without counting a step; 'decoder' counts the step
      on the batch its inner loop started with. EMA parameters follow counted steps only.
    means: whether aux carries the posterior means (static). A jitted step computes what it
      returns, and a posterior whose mean is a pass of its own (the hierarchical VAEs' mean
      path) would pay that pass every step: the Trainer's loops compile without it.

  Returns:
    (new state, scalar metrics, aux) with aux = {'z': latents [n, rows, D], 'mu': posterior
    means [n, rows, D] (with `means`)} of the rows trained on (left on device).
  """
  if update not in UPDATES:
    raise ValueError(f"unknown update {update!r}: expected one of {tuple(UPDATES)}")
  key = _keys(state, update)
  n = setup.levels.n
  level_batches = setup.levels.split(batch)
  gen = setup.levels.gen_level
  decode = lambda z, k: setup.model.decode(level_variables(setup, state.variables(), gen), z, k)
  level_batches, row_mask = setup.objective.prepare(
    state.objective_state,
    level_batches,
    decode=decode,
    key=key(Salt.PREPARE),
    phase=phase,
  )
  (loss, (metrics, new_model_state, terms)), grads = loss_and_grads(
    setup, state, level_batches, row_mask, key(Salt.LOSS)
  )
  grad_norm = optax.tree.norm(grads)
  terms = jax.tree.map(jax.lax.stop_gradient, terms)
  obj_update = functools.partial(setup.objective.update, step=state.step, phase=phase)
  new_obj, obj_metrics = multiscale.over_levels(
    lambda s, t, k, lv: obj_update(s, t, key=k, level=lv), n, (0, 0, 0, 0)
  )(
    state.objective_state,
    terms,
    _level_keys(key(Salt.OBJECTIVE_UPDATE), n),
    setup.levels.level_args(),
  )
  # a non-finite loss or objective state poisons the gradients, so that the optimiser skips
  # (and counts) the step even where the bad value sits behind a zero gradient; its state then
  # stays as it was (optax.apply_if_finite), consistent with the parameters
  ok = jnp.isfinite(loss) & _all_finite(new_obj)
  grads = jax.tree.map(lambda g: jnp.where(ok, g, jnp.nan), grads)
  updates, new_opt = setup.tx.update(grads, state.opt_state, state.params)
  if update != "all":
    labels = setup.model.partition(state.params)
    updates, new_opt = optim.restrict_update(updates, new_opt, state.opt_state, labels, update)
  updates = validation.scale_updates(updates, state.validation)  # lr halvings on plateau
  new_params = optax.apply_updates(state.params, updates)

  finite = ok & _all_finite(grads)
  keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
  new_params = keep(new_params, state.params)
  ema = state.ema_params
  d_step, d_position = UPDATES[update]
  if ema is not None and d_step:
    ema = keep(optim.ema_update(ema, new_params, setup.ema_decay), ema)
  new_state = state.replace(
    step=state.step + d_step,
    data_position=state.data_position + d_position,
    params=new_params,
    opt_state=new_opt,
    model_state=keep(new_model_state, state.model_state),
    objective_state=keep(new_obj, state.objective_state),
    ema_params=ema,
    bad_step=jnp.where(~finite & (state.bad_step < 0), state.step, state.bad_step),
  )
  out = {k: jnp.mean(v) for k, v in {**metrics, **obj_metrics}.items()}
  out["loss"] = loss
  out["grad_norm"] = grad_norm
  if n > 1:  # the two ends of the level axis
    for name in ("kl", "recon"):
      out[f"{name}/level0"] = metrics[name][0]
      out[f"{name}/level{n - 1}"] = metrics[name][-1]
  aux = {"z": terms.z}
  if means:
    aux["mu"] = terms.posterior.mean
  return new_state, out, aux


def eval_terms(
  setup: Setup,
  state: TrainState,
  batch: Any,
  key: jax.Array,
  *,
  level: int | None = None,
  params: Any = None,
) -> tuple[jax.Array, dict]:
  """The objective's loss and the terms' metrics of a batch at one level (default: the
  generation level), without updating any statistics. `params`: e.g. the EMA parameters."""
  lv = setup.levels.gen_level if level is None else level
  variables = level_variables(setup, state.variables(params), lv)
  terms, _, refine_metrics = level_terms(
    setup, variables, batch, None, key, state.step, train=False
  )
  levels = jax.tree.map(lambda a: a[lv], setup.levels.level_args())
  obj_state = multiscale.level_slice(state.objective_state, lv)
  loss, metrics = setup.objective.loss(obj_state, terms, step=state.step, level=levels)
  return loss, {**term_metrics(setup, terms, state.step), **metrics, **refine_metrics, "loss": loss}
