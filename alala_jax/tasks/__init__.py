"""Tasks by name (`config.task`): each picks its data loader, model and evaluators.

records   paper 000's record VAE on a dataclass schema (default)
images    a dense Bernoulli VAE on binary images (embedded synthetic set or binarized MNIST)
text      the LSTM text VAE of papers 001 / 004 (embedded corpus, PTB, synthetic oracles)
"""

from __future__ import annotations

from alala_jax.tasks.base import Task

TASKS = ("records", "images", "text")


def build(config, workdir: str | None = None) -> Task:
  """The task `config.task` (default 'records') with its data loaded."""
  name = config.get("task", "records")
  if name == "records":
    from alala_jax.tasks.records import RecordTask

    return RecordTask.from_config(config, workdir)
  if name == "images":
    from alala_jax.tasks.images import ImageTask

    return ImageTask.from_config(config, workdir)
  if name == "text":
    from alala_jax.tasks.text import TextTask

    return TextTask.from_config(config, workdir)
  raise ValueError(f"unknown config.task {name!r}: expected one of {TASKS}")


def build_without_data(config, workdir: str) -> Task:
  """The task of a trained workdir, for generation without the training data."""
  name = config.get("task", "records")
  if name == "records":
    from alala_jax.tasks.records import RecordTask

    return RecordTask.without_data(config, workdir)
  return build(config, workdir)


__all__ = ["Task", "TASKS", "build", "build_without_data"]
