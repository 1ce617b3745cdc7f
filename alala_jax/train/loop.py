"""`train_and_evaluate(config, workdir)`: the whole training run, importable from a notebook.

* resumes automatically from the latest orbax checkpoint in ``workdir/checkpoints``;
* writes ``workdir/config.json``, ``workdir/spec.json`` (vocabulary, field sizes) and JSON-lines
  metrics to ``workdir/metrics.jsonl``;
* prints a progress line (step, steps/s, ETA, losses) every ``log_every`` steps;
* stops with `NonFiniteLossError` (naming the step and the last good checkpoint) if a step's
  loss or gradient is not finite; the bad update is never applied nor checkpointed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

from alala_jax import evaluate as ev
from alala_jax import schema as sc
from alala_jax.data import batching, codec, datasets
from alala_jax.train import sharding
from alala_jax.train.state import Programs, TrainState


class NonFiniteLossError(FloatingPointError):
  pass


class MetricWriter:
  """Appends one JSON object per line: {"step": s, "split": ..., metric: value, ...}."""

  def __init__(self, path: str):
    self.path = path

  def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
    row = {"step": int(step), "split": split, "time": time.time()}
    row.update({k: float(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")


class Progress:
  """A progress line with steps/s and ETA, printed to stderr every `every` steps."""

  LATENT_LABELS = {"wae": "W2^2/dim", "aae": "adv CE"}   # what metrics['kl'] holds per mode

  def __init__(self, total: int, start: int, stream=sys.stderr, mode: str = "beta"):
    self.total, self.start, self.stream = total, start, stream
    self.latent_label = self.LATENT_LABELS.get(mode, "kl/dim")
    self.t0 = None

  def __call__(self, step: int, metrics: dict[str, float], extra: str = "") -> None:
    now = time.time()
    if self.t0 is None:        # first report: the time until here was compilation
      self.t0, self.s0 = now, step
      rate = float("nan")
    else:
      rate = (step - self.s0) / max(now - self.t0, 1e-9)
    eta = (self.total - step) / rate if rate == rate and rate > 0 else float("nan")
    eta_s = "?" if eta != eta else f"{int(eta) // 60}m{int(eta) % 60:02d}s"
    print(f"step {step:>7d}/{self.total}  {rate:6.2f} steps/s  ETA {eta_s}  "
          f"loss {metrics['loss']:.4f}  recon {metrics['recon']:.4f}  {self.latent_label} "
          f"{metrics['kl']:.4f}  beta {metrics['beta']:.3f}  bpc {metrics['bpc']:.3f}" + extra,
          file=self.stream, flush=True)


def checkpoint_manager(workdir: str, max_to_keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def restore_latest(mngr: ocp.CheckpointManager, template: TrainState) -> TrainState | None:
  step = mngr.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
  return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


@dataclasses.dataclass
class Prepared:
  """Data, arrays and compiled programs of one config (reusable across runs of that config)."""
  data: datasets.Dataset
  programs: Programs
  train_arrays: Any
  test_arrays: Any
  train_report: codec.EncodeReport
  test_report: codec.EncodeReport


def prepare(config, workdir: str | None = None) -> Prepared:
  """Loads data, builds the spec (or reads it from `workdir`) and the compiled programs."""
  data = datasets.load(config.data)
  root = sc.parse_schema(data.cls)
  spec_path = os.path.join(workdir, "spec.json") if workdir else None
  if spec_path and os.path.exists(spec_path):
    with open(spec_path) as f:
      spec = codec.DataSpec.from_json(f.read())
  else:
    spec = codec.build_spec(root, data.train)
  train_arrays, train_rep = codec.encode(root, spec, data.train)
  test_arrays, test_rep = codec.encode(root, spec, data.test)
  return Prepared(data, Programs(root, spec, config), train_arrays, test_arrays, train_rep,
                  test_rep)


def train(config, workdir: str, prepared: Prepared | None = None, log=print,
          stop_at: int | None = None) -> tuple[TrainState, Prepared]:
  """Trains to `config.train.num_steps`, resuming from `workdir` if it holds checkpoints.

  Args:
    config: the experiment ConfigDict.
    workdir: checkpoints, metrics.jsonl, config.json and spec.json go here.
    prepared: reuse the data and compiled programs of an earlier `prepare(config)`.
    log: where progress and notes are printed.
    stop_at: stop (with a checkpoint) at this step instead of `num_steps`, as if the run were
      interrupted there; schedules still follow `num_steps`.

  Returns:
    (final TrainState, Prepared).

  Raises:
    NonFiniteLossError: a step's loss or gradient was not finite.
  """
  os.makedirs(workdir, exist_ok=True)
  tc = config.train
  prep = prepared or prepare(config, workdir)
  data, programs, train_arrays, test_arrays = (prep.data, prep.programs, prep.train_arrays,
                                               prep.test_arrays)
  test_rep = prep.test_report
  with open(os.path.join(workdir, "spec.json"), "w") as f:
    f.write(programs.spec.to_json())
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=1))
  log(f"data: {data.source}: {data.notes}; train {len(data.train)}, test {len(data.test)}; "
      f"vocabulary {programs.spec.vocab_size} ids; test-set characters outside the vocabulary: "
      f"{test_rep.oov_chars}, truncated test strings: {test_rep.truncated_strings}")

  mngr = checkpoint_manager(workdir, tc.max_to_keep)
  t_compile = time.time()
  state = programs.create_state(config.seed, batching.batch_at(train_arrays, 0, tc.batch_size,
                                                               config.seed))
  mesh = sharding.mesh_from_config(tc.get("mesh", ""))
  if mesh is not None:
    state = jax.device_put(state, sharding.state_shardings(state, mesh, programs.levels.n))
    log(f"mesh: {dict(mesh.shape)} over {mesh.devices.size} devices (levels over 'beta', "
        "rows over ('beta', 'data'))")
  restored = restore_latest(mngr, state)
  if restored is not None:
    state = restored
    log(f"resumed from checkpoint at step {int(state.step)} in {mngr.directory}")
  writer = MetricWriter(os.path.join(workdir, "metrics.jsonl"))
  start = int(state.step)
  progress = Progress(tc.num_steps, start, mode=prep.programs.mode)
  paper_budget = 2_000_000 * 256 * 32
  lv = programs.levels
  if lv.n > 1:
    log(f"multiscale: {lv.n} levels, beta_i = beta_max x {lv.multipliers[0]:.3g} ... "
        f"{lv.multipliers[-1]:.3g}, mode {lv.mode}, "
        + ("every level sees the whole batch" if lv.shared_batch else
           f"{lv.per_level_batch(tc.batch_size)} records per level per step")
        + f"; generation and eval losses use level {lv.gen_level}")
  log(f"training {tc.num_steps} steps x batch {tc.batch_size} = "
      f"{tc.num_steps * tc.batch_size / paper_budget:.2e} of the paper's budget "
      f"(2M steps x 256 x 32 workers)")

  def check_finite(st: TrainState):
    bad = int(st.bad_step)
    if bad >= 0:
      raise NonFiniteLossError(
          f"non-finite loss or gradient at step {bad}; no update was applied from that step on. "
          f"Last good checkpoint: step {mngr.latest_step()} in {mngr.directory}")

  step = start
  end = tc.num_steps if stop_at is None else min(stop_at, tc.num_steps)
  while step < end:
    batch = batching.batch_at(train_arrays, step, tc.batch_size, config.seed)
    if mesh is not None:
      batch = jax.device_put(batch, sharding.batch_sharding(mesh))
    if step == programs.gen_start_step:
      log(f"step {step}: augmented training starts ({programs.aug.n_augmented} augmented "
          f"latents x {programs.levels.n} level(s), p_sampled {programs.level_p.min():.3g}-"
          f"{programs.level_p.max():.3g}); compiling its step")
    state, metrics, _ = programs.step_fn(step)(state, batch)
    step += 1
    if step == start + 1 and step > 0:
      jax.block_until_ready(state)
      log(f"first step (compilation included) took {time.time() - t_compile:.1f} s")
    if step % tc.log_every == 0 or step == tc.num_steps:
      check_finite(state)
      m = {k: float(v) for k, v in jax.device_get(metrics).items()}
      writer.write(step, "train", m)
      extra = ""
      if step % tc.eval_every == 0 or step == tc.num_steps:
        losses = ev.loss_report(programs, state, train_arrays, test_arrays, tc.batch_size,
                                tc.eval_batches, config.seed)
        writer.write(step, "eval", losses)
        extra = (f"  | test {losses['test/loss']:.4f}  generated {losses['generated/loss']:.4f}")
      progress(step, m, extra)
    if step % tc.checkpoint_every == 0 or step == end:
      check_finite(state)
      mngr.save(step, args=ocp.args.StandardSave(state))
  mngr.wait_until_finished()
  mngr.close()
  check_finite(state)
  return state, prep


def train_and_evaluate(config, workdir: str, log=print,
                       prepared: Prepared | None = None) -> dict[str, Any]:
  """Trains (resuming from `workdir`), then evaluates and prints every metric.

  Returns:
    The final evaluation dict (see `alala_jax.evaluate.evaluate`), also written to
    ``workdir/final_metrics.json`` and as the 'final' row of metrics.jsonl.
  """
  state, prep = train(config, workdir, prepared, log=log)
  t_eval = time.time()
  res = ev.evaluate(prep.programs, state, prep.data.train, prep.data.test, prep.train_arrays,
                    prep.test_arrays, config)
  res["eval_seconds"] = time.time() - t_eval
  MetricWriter(os.path.join(workdir, "metrics.jsonl")).write(
      int(state.step), "final", {k: v for k, v in res.items() if isinstance(v, (int, float))})
  with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
    json.dump(res, f, indent=1, sort_keys=True)
  log(ev.format_summary(res))
  return res


def _restore_or_raise(workdir: str, config, template: TrainState) -> TrainState:
  mngr = checkpoint_manager(workdir, config.train.max_to_keep)
  state = restore_latest(mngr, template)
  mngr.close()
  if state is None:
    raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}")
  return state


def load_model(workdir: str, config) -> tuple[TrainState, Programs]:
  """The latest TrainState and compiled programs of a workdir, from its spec.json and
  checkpoints alone (no training data needed: what generation uses)."""
  with open(os.path.join(workdir, "spec.json")) as f:
    spec = codec.DataSpec.from_json(f.read())
  root = sc.parse_schema(datasets.model_cls(config.data))
  programs = Programs(root, spec, config)
  dummy, _ = codec.encode(root, spec, [None] * config.train.batch_size)   # shapes only
  return _restore_or_raise(workdir, config, programs.create_state(config.seed, dummy)), programs


def load_trained(workdir: str, config) -> tuple[TrainState, Prepared]:
  """The latest TrainState of a trained workdir with its data and programs (for evaluation)."""
  prep = prepare(config, workdir)
  bs = min(config.train.batch_size, batching.num_rows(prep.train_arrays))
  template = prep.programs.create_state(config.seed, batching.batch_at(prep.train_arrays, 0, bs,
                                                                       config.seed))
  return _restore_or_raise(workdir, config, template), prep
