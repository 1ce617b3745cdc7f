"""The 'records' task: paper 000's record VAE on a dataclass schema (CSV or synthetic data).

Data: `config.data` (embedded synthetic addresses by default, or an OpenAddresses-style
CSV); model: `RecordModel` with the Tuple- and String-level scheduled sampling of
`config.objective.{tuple,string}_scheme`; evaluators: zip-coordinate p-value, d_Lev,
train / test / generated loss and BPC, exact-copy rate (`alala_jax.evaluate`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import jax

from alala_jax import evaluate, files, latent_priors, objectives
from alala_jax import schema as schema_lib
from alala_jax.data import codec, datasets
from alala_jax.metrics import likelihood
from alala_jax.models import hierarchical_record
from alala_jax.models.record import RecordModel
from alala_jax.nn import tree
from alala_jax.objectives import schedules
from alala_jax.tasks.base import Task
from alala_jax.train import state as state_lib
from alala_jax.train.trainer import Trainer

SPEC_FILE = "spec.json"
PRIOR_FILE = "generation_prior.npz"


def model_config(spec: codec.DataSpec, model_cfg) -> tree.ModelConfig:
  return tree.ModelConfig(
    vocab_size=spec.vocab_size,
    max_len=tuple(sorted(spec.max_len.items())),
    max_items=tuple(sorted(spec.max_items.items())),
    categories=tuple(sorted((k, spec.num_values(k)) for k in spec.categories)),
    latent_dim=model_cfg.latent_dim,
    char_dim=model_cfg.char_dim,
    tuple_type=model_cfg.tuple_type,
    string_scan=model_cfg.get("string_scan", "field"),
    gru_remat=model_cfg.get("gru_remat", "none"),
  )


def make_model(root: schema_lib.RecordNode, spec: codec.DataSpec, config):
  """The record VAE of a config, with its decoding schedules (Table 1 schemes); with a
  `config.model.hierarchy` naming a variant, paper 002's latent hierarchy between its encoder
  and decoder (`models.hierarchical_record`), which generates from its own prior only."""
  obj, n = config.objective, config.train.num_steps
  model = RecordModel(
    root,
    model_config(spec, config.model),
    p_tuple=schedules.teacher_schedule(obj.tuple_scheme, n, obj.ss_fraction),
    p_string=schedules.teacher_schedule(obj.string_scheme, n, obj.ss_fraction),
  )
  hierarchy = config.model.get("hierarchy")
  if hierarchy is not None and hierarchy.get("variant"):
    if latent_priors.parse_kinds(config.eval.generation_prior) != ("tracked",):
      raise ValueError(
        "a record VAE with a latent hierarchy (config.model.hierarchy) generates from its own "
        "prior p(z): set config.eval.generation_prior='tracked', got "
        f"{config.eval.generation_prior!r}"
      )
    if config.objective.multiscale.n_levels > 1:
      raise ValueError("config.model.hierarchy does not support objective.multiscale.n_levels > 1")
    model = hierarchical_record.from_config(model, hierarchy)
  return model


def categorical_fields(data_cfg, record_cls: type, train: list[Any]) -> tuple[list[str], str]:
  """The str fields that `data_cfg.categorical` names ('' / 'a,b' / 'auto'), and a note."""
  choice = data_cfg.categorical.strip()
  if not choice:
    return [], ""
  if choice == "auto":
    return codec.choose_categorical(
      schema_lib.parse_schema(record_cls),
      train,
      data_cfg.categorical_max_values,
      data_cfg.categorical_max_share,
    )
  names = [n.strip() for n in choice.split(",") if n.strip()]
  return names, "categorical fields: " + ", ".join(names)


def load_run_prior(
  workdir: str, step: int, temperature: float
) -> tuple[latent_priors.Prior | None, float, str]:
  """The generation prior a run's evaluation saved (workdir/generation_prior.npz) with the
  temperature it was fitted for and a description; ``(None, temperature, ...)`` (the model's
  tracked Gaussian) when there is none or it belongs to another checkpoint than `step` (then
  a warning says so on stderr)."""
  path = os.path.join(workdir, PRIOR_FILE)
  if not os.path.exists(path):
    return None, temperature, "the model's tracked Gaussian (paper 000 Sec 2.4)"
  prior, meta = latent_priors.load_with_meta(path)
  if meta.get("step") != step:
    print(
      f"warning: {path} was fitted to the model of step {meta.get('step')}, the checkpoint "
      f"is step {step}: using the tracked Gaussian instead (re-run experiments.evaluate to "
      "refit)",
      file=sys.stderr,
    )
    return None, temperature, "the model's tracked Gaussian (paper 000 Sec 2.4)"
  temperature = meta.get("temperature", temperature)
  return (
    prior,
    temperature,
    (f"{latent_priors.describe('the fitted prior', prior)} at temperature {temperature:g}"),
  )


def read_spec(workdir: str | None) -> codec.DataSpec | None:
  path = os.path.join(workdir, SPEC_FILE) if workdir else None
  if path and os.path.exists(path):
    with open(path) as f:
      return codec.DataSpec.from_json(f.read())
  return None


class RecordTask(Task):
  """Records of one schema: data, the compiled trainer and the record evaluators."""

  name = "records"

  def __init__(
    self,
    config,
    root: schema_lib.RecordNode,
    spec: codec.DataSpec,
    data: datasets.Dataset | None = None,
  ):
    self.config, self.root, self.spec, self.data = config, root, spec, data
    codec.check_categories(root, spec)
    model = make_model(root, spec, config)
    epoch = len(data.train) // config.train.batch_size if data is not None else 0
    setup = state_lib.make_setup(model, objectives.build(config, model), config, epoch)
    self.trainer = Trainer(setup)
    self.model, self.levels = model, setup.levels
    self.elbo = jax.jit(lambda v, b, k: likelihood.elbo(model, v, b, k))
    self._reconstruct = jax.jit(
      lambda v, k, b, g: model.reconstruct(v, b, k, greedy=g), static_argnums=3
    )
    self.field_nll = jax.jit(model.field_nll)  # (variables, batch, z, key) -> {field: [B]}
    self.generation_priors = ({}, None)  # (priors, FitReport) of the last final_eval
    self._prior_meta = {}  # the model step and temperature those priors belong to
    self.train_arrays = self.test_arrays = None
    self.train_report = self.test_report = codec.EncodeReport()
    if data is not None:
      self.train_arrays, self.train_report = codec.encode(root, spec, data.train)
      self.test_arrays, self.test_report = codec.encode(root, spec, data.test)

  @classmethod
  def from_config(cls, config, workdir: str | None = None) -> "RecordTask":
    """Loads the data; the spec (vocabulary, sizes, category fields and values) is read from
    `workdir` if it holds one, else built from the training records."""
    data = datasets.load(config.data)
    spec = read_spec(workdir)
    if spec is not None:
      root = schema_lib.parse_schema(data.cls, spec.categories)
    else:
      names, note = categorical_fields(config.data, data.cls, data.train)
      root = schema_lib.parse_schema(data.cls, names)
      spec = codec.build_spec(root, data.train)
      if note:
        data.notes += "; " + note
    return cls(config, root, spec, data)

  @classmethod
  def without_data(cls, config, workdir: str) -> "RecordTask":
    """The task of a trained workdir from its spec alone (generation needs no data)."""
    spec = read_spec(workdir)
    if spec is None:
      raise FileNotFoundError(f"no {SPEC_FILE} in {workdir}: not a trained workdir")
    root = schema_lib.parse_schema(datasets.model_cls(config.data), spec.categories)
    return cls(config, root, spec)

  def example_batch(self, batch_size: int, seed: int = 0) -> Any:
    """A batch with the model's shapes (real rows when the data is loaded)."""
    if self.train_arrays is not None:
      return super().example_batch(batch_size, seed)
    return codec.encode(self.root, self.spec, [None] * batch_size)[0]

  # --- what the record evaluators call (alala_jax.evaluate / generate / analysis) ---
  def variables(self, state, level: int | None = None) -> dict:
    return self.trainer.variables(state, level)

  def generate(self, variables, key, n: int, greedy: bool):
    return self.trainer.generate(variables, key, n, greedy)

  def reconstruct(self, variables, key, batch, greedy: bool):
    """g(mu(x)) of a batch (App E)."""
    return self._reconstruct(variables, key, batch, greedy)

  def encode_mean(self, variables, batch):
    return self.trainer.encode_mean(variables, batch)

  def encode_posterior(self, variables, batch, refined: bool = False, step: int = 0):
    """q(z | x) of a batch (a DiagGaussian); `refined`: the refined q_K of SVI at evaluation
    (`refine.at_eval`; in its 'reference' mode q_K depends on the batch's size), its objective
    decoding with the schedules of `step`."""
    if refined:
      return self.trainer.encode_refined(variables, batch, step)
    return self.trainer.encode_posterior(variables, batch)

  @property
  def refines_at_eval(self) -> bool:
    return self.trainer.refines_at_eval

  def prior_moments(self, variables):
    """Mean and covariance of the model's own (tracked) generation Gaussian."""
    return self.model.prior_moments(variables)

  def decode_latents(self, variables, z, key, greedy: bool = False):
    return self.trainer.decode_latents(variables, z, key, greedy)

  def eval_loss(self, state, batch, salt):
    return self.trainer.eval_loss(state, batch, salt)

  def generated_loss(self, state, salt, n: int):
    return self.trainer.generated_loss(state, salt, n)

  # --- Task ---
  def notes(self) -> list[str]:
    d, rep = self.data, self.test_report
    lines = [
      f"data: {d.source}: {d.notes}; train {len(d.train)}, test {len(d.test)}; "
      f"vocabulary {self.spec.vocab_size} ids; test-set characters outside the "
      f"vocabulary: {rep.oov_chars}, truncated test strings: {rep.truncated_strings}"
      + (f", test values outside their category: {rep.oov_values}" if self.spec.categories else "")
    ]
    if isinstance(self.model, hierarchical_record.HierarchicalRecordVAE):
      lines.append(f"model: {self.model.describe()}; generation from its prior p(z)")
    lv, bs = self.levels, self.config.train.batch_size
    if lv.n > 1:
      lines.append(
        f"multiscale: {lv.n} levels, beta_i = beta_max x {lv.multipliers[0]:.3g} ... "
        f"{lv.multipliers[-1]:.3g}, objective {self.trainer.objective.name}, "
        + (
          "every level sees the whole batch"
          if lv.shared_batch
          else f"{lv.per_level_batch(bs)} records per level per step"
        )
        + f"; generation and eval losses use level {lv.gen_level}"
      )
    paper_budget = 2_000_000 * 256 * 32
    n = self.config.train.num_steps
    lines.append(
      f"training {n} steps x batch {bs} = {n * bs / paper_budget:.2e} of the "
      "paper's budget (2M steps x 256 x 32 workers)"
    )
    return lines

  def save(self, workdir: str) -> None:
    files.write_atomic(os.path.join(workdir, SPEC_FILE), self.spec.to_json())
    prior = os.path.join(workdir, PRIOR_FILE)
    if os.path.exists(prior):  # fitted to a model that training is about to change
      os.remove(prior)

  def periodic_eval(self, state, config) -> dict[str, float]:
    return evaluate.loss_report(
      self,
      state,
      self.train_arrays,
      self.test_arrays,
      config.train.batch_size,
      config.train.eval_batches,
      config.seed,
    )

  def fit_generation_prior(self, state, config) -> latent_priors.Prior | None:
    """Fits the generation priors of `config.eval` on the model of `state` (kept for
    `final_eval` and `save_final`); returns the headline one, None for the tracked Gaussian."""
    self.generation_priors = evaluate.fit_generation_priors(self, state, self.train_arrays, config)
    self._prior_meta = {"step": int(state.step), "temperature": config.eval.prior_temperature}
    priors, fit = self.generation_priors
    return priors.get(fit.kind) if fit is not None else None

  def final_eval(self, state, config) -> dict[str, Any]:
    self.fit_generation_prior(state, config)
    res = evaluate.evaluate(
      self,
      state,
      self.data.train,
      self.data.test,
      self.train_arrays,
      self.test_arrays,
      config,
      self.generation_priors,
    )
    res["data_position"] = int(state.data_position)  # batches consumed (aggressive: more)
    return res

  def save_final(self, workdir: str) -> None:
    """Writes the headline generation prior fitted by `final_eval` (if it is a fitted one) to
    workdir/generation_prior.npz, which `experiments/generate.py` samples from."""
    priors, fit = self.generation_priors
    prior = priors.get(fit.kind) if fit is not None else None
    path = os.path.join(workdir, PRIOR_FILE)
    if prior is not None:
      latent_priors.save(path, prior, **self._prior_meta)
    elif os.path.exists(path):
      os.remove(path)  # a stale prior of an earlier evaluation must not outlive it

  def summary(self, res: dict[str, Any]) -> str:
    return evaluate.format_summary(res)

  def progress_extra(self, metrics: dict[str, float]) -> str:
    return f"  bpc {metrics['bpc']:.3f}" if "bpc" in metrics else ""
