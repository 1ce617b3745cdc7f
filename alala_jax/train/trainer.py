"""`Trainer`: the compiled functions of one `Setup`, for any model and objective.

Each function is jitted once (fixed shapes, the setup closed over): the training step of
every phase the objective asks for (compiled on first use), the evaluation loss at the
generation level, the generated loss, sampling, encoding and decoding.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax

from alala_jax import refine
from alala_jax.train import state as state_lib
from alala_jax.train import step as step_lib
from alala_jax.train.state import Salt, Setup, TrainState


class Trainer:
  """Compiled steps and evaluation functions of a Setup. Build once, call many times."""

  def __init__(self, setup: Setup):
    self.setup = setup
    self.model, self.objective, self.levels = setup.model, setup.objective, setup.levels
    ref = setup.refinement
    # what the likelihood metrics evaluate: the refined posterior when SVI runs at evaluation
    self.eval_model = (
      refine.RefinedModel(self.model, ref) if ref is not None and ref.config.at_eval else self.model
    )
    self._steps: dict[str, Any] = {}
    self.eval_loss = jax.jit(self._eval_loss)
    self.generated_loss = jax.jit(self._generated_loss, static_argnums=2)
    self.generate = jax.jit(self._generate, static_argnums=(2, 3))
    self.encode_mean = jax.jit(self._encode_mean)
    self.encode_posterior = jax.jit(lambda variables, batch: self.model.encode(variables, batch)[0])
    self.encode_refined = jax.jit(self._encode_refined)
    self.decode_latents = jax.jit(self._decode_latents, static_argnums=3)

  def create_state(self, seed: int, example_batch) -> TrainState:
    return state_lib.create_state(self.setup, seed, example_batch)

  def phase_at(self, step: int) -> str:
    return self.objective.phase_at(step)

  def step_fn(self, step: int, *, means: bool = False):
    """The compiled step for `step` (the objective's phase then), compiled on first use."""
    return self.phase_step(self.phase_at(step), means=means)

  def phase_step(self, phase: str, update: str = "all", *, means: bool = False):
    """The compiled step of `phase` updating `update` ('all', 'encoder', 'decoder'); its aux
    carries the posterior means only with `means` (`step.train_step`)."""
    name = phase if update == "all" else f"{phase}/{update}"
    if means:
      name += "+means"
    step = functools.partial(
      step_lib.train_step, setup=self.setup, phase=phase, update=update, means=means
    )
    return self.compiled(name, lambda: jax.jit(step, donate_argnums=0))

  def compiled(self, name: str, build: Callable[[], Any]):
    """A compiled program of this trainer's setup, built by `build()` on first use and kept
    under `name` with the phase steps (e.g. aggressive training's on-device inner loop)."""
    if name not in self._steps:
      self._steps[name] = build()
    return self._steps[name]

  def compiled_phases(self) -> dict[str, Any]:
    return dict(self._steps)

  def variables(self, state: TrainState, level: int | None = None, params: Any = None) -> dict:
    """Single-level model variables for evaluation (level `levels.gen_level` by default),
    with the EMA parameters when the run keeps them (`optim.ema_decay` > 0). The model's
    non-gradient statistics are the training run's (the record VAE's generation prior tracks
    the latents of the raw parameters)."""
    if params is None and state.ema_params is not None:
      params = state.ema_params
    return state_lib.level_variables(
      self.setup, state.variables(params), self.levels.gen_level if level is None else level
    )

  def _eval_loss(self, state: TrainState, batch, salt) -> dict:
    """Objective loss and metrics of a batch at the generation level under the current
    schedules, without updating any statistics (EMA parameters when kept)."""
    _, metrics = step_lib.eval_terms(
      self.setup, state, batch, state_lib.step_key(state, salt), params=state.ema_params
    )
    return metrics

  def _generate(self, variables, key, n: int, greedy: bool):
    return self.model.sample(variables, key, n, greedy=greedy)

  def _decode_latents(self, variables, z, key, greedy: bool = False):
    return self.model.decode(variables, z, key, greedy=greedy)

  def _generated_loss(self, state: TrainState, salt, n: int) -> dict:
    """Generated loss (paper 000 Sec 4): the loss of freshly generated inputs, as if data."""
    key = state_lib.step_key(state, salt)
    sample = self._generate(self.variables(state), key, n, False)
    return self._eval_loss(state, sample, salt + 1)

  @property
  def refines_at_eval(self) -> bool:
    """Whether evaluation sees the refined posterior q_K (`refine.at_eval`)."""
    return isinstance(self.eval_model, refine.RefinedModel)

  def _encode_refined(self, variables, batch, step):
    """q_K of the refinement at evaluation, the decoder's schedules at `step` (the encoder's
    q_0 when there is no refinement at evaluation)."""
    if self.refines_at_eval:
      return self.eval_model.encode_at(variables, batch, step)[0]
    return self.model.encode(variables, batch)[0]

  def _encode_mean(self, variables, batch):
    """Posterior means [B, D]."""
    return self.model.encode(variables, batch)[0].mean


__all__ = ["Trainer", "Salt"]
