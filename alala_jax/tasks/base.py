"""What a task gives the generic training loop (big_vision's "by name" pattern).

A task turns `config.data` / `config.model` into arrays and a `Trainer` (model, objective,
optimiser), and knows how to evaluate a state. `train/loop.py` knows no task.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpy as np

from alala_jax.data import batching
from alala_jax.train.state import Salt, TrainState
from alala_jax.train.trainer import Trainer


class Task(abc.ABC):
  """One experiment's data, model and evaluators."""

  name: str
  trainer: Trainer
  train_arrays: Any  # pytree of arrays with a leading row axis
  test_arrays: Any

  def example_batch(self, batch_size: int, seed: int = 0) -> Any:
    """A batch with the training shapes (what the state is initialised from)."""
    bs = min(batch_size, batching.num_rows(self.train_arrays))
    return batching.batch_at(self.train_arrays, 0, bs, seed)

  def notes(self) -> list[str]:
    """Lines the loop logs at the start (data source, sizes, counted input handling)."""
    return []

  def save(self, workdir: str) -> None:
    """Writes what reloading the model needs without the data (e.g. a vocabulary)."""
    del workdir

  def save_final(self, workdir: str) -> None:
    """Writes what `final_eval` fitted and generation reuses (e.g. a fitted latent prior)."""
    del workdir

  @abc.abstractmethod
  def periodic_eval(self, state: TrainState, config) -> dict[str, float]:
    """Cheap metrics logged every `train.eval_every` steps (test loss, generated loss)."""

  @abc.abstractmethod
  def final_eval(self, state: TrainState, config) -> dict[str, Any]:
    """Every metric of the task for the final state."""

  @abc.abstractmethod
  def summary(self, res: dict[str, Any]) -> str:
    """The human-readable report of `final_eval`'s result."""

  def test_loss_means(
    self, state: TrainState, config, names: tuple[str, ...] = ("loss", "nll", "kl")
  ) -> dict[str, float]:
    """{'test/<name>': mean over `config.train.eval_batches` fixed test batches} of the
    trainer's evaluation metrics (objective loss, -log p(x|z), KL by default)."""
    acc: dict[str, list[float]] = {}
    batches = batching.eval_batches(
      self.test_arrays, config.train.batch_size, config.train.eval_batches, config.seed
    )
    for i, b in enumerate(batches):
      m = jax.device_get(self.trainer.eval_loss(state, b, Salt.EVAL_LOSS + i))
      for k in names:
        acc.setdefault(f"test/{k}", []).append(float(m[k]))
    return {k: float(sum(v) / len(v)) for k, v in acc.items()}

  def validation_metrics(self, state: TrainState, config) -> dict[str, float]:
    """Row-weighted means over the whole held-out split (`heldout_arrays`: 'valid/...', or
    'test/...' where the task has no validation split) of the trainer's evaluation metrics:
    'loss' (the objective's, at the current schedules), 'nll', 'kl' and 'bound' = nll + kl
    (-ELBO at KL weight 1 in the model's loss units; the refined posterior's when SVI runs at
    evaluation). What `train.validation` decides on (train/validation.py)."""
    valid = getattr(self, "valid_arrays", None)
    prefix, data = ("test", self.test_arrays) if valid is None else ("valid", valid)
    n, bs = batching.num_rows(data), int(config.train.batch_size)
    sums = {"loss": 0.0, "nll": 0.0, "kl": 0.0}
    for i, start in enumerate(range(0, n, bs)):
      b = batching.take(data, np.arange(start, min(start + bs, n)))
      m = jax.device_get(self.trainer.eval_loss(state, b, Salt.VALIDATION + i))
      rows = min(bs, n - start)
      for k in sums:
        sums[k] += float(m[k]) * rows
    out = {f"{prefix}/{k}": v / n for k, v in sums.items()}
    out[f"{prefix}/bound"] = out[f"{prefix}/nll"] + out[f"{prefix}/kl"]
    return out

  def heldout_arrays(self) -> Any:
    """Held-out data for training decisions: the validation split if the task has one,
    else the test split."""
    valid = getattr(self, "valid_arrays", None)
    return self.test_arrays if valid is None else valid

  def heldout_mi(self, state: TrainState, config) -> float:
    """I_q(x; z) on held-out data with paper 001's reference estimator (minibatch aggregate
    posterior, batch-size-weighted mean over `config.train.batch_size` batches; what
    aggressive training's stopping rule reads)."""
    from alala_jax.metrics import latent

    seed = int(config.seed)
    return float(
      latent.mi_reference(
        self.trainer.model,
        self.trainer.variables(state),
        self.heldout_arrays(),
        jax.random.fold_in(jax.random.key(seed), int(Salt.HELDOUT_MI)),
        batch_size=int(config.train.batch_size),
      )["mi"]
    )

  def progress_extra(self, metrics: dict[str, float]) -> str:
    """Task-specific fields of the progress line."""
    del metrics
    return ""
