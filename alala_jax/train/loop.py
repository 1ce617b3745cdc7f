"""`train_and_evaluate(config, workdir)`: the whole training run, importable from a notebook.

* resumes automatically from the latest orbax checkpoint in ``workdir/checkpoints``;
* writes ``workdir/config.json``, ``workdir/spec.json`` (vocabulary, field sizes) and JSON-lines
  metrics to ``workdir/metrics.jsonl``;
* prints a progress line (step, steps/s, ETA, losses) every ``log_every`` steps;
* stops with `NonFiniteLossError` (naming the step and the last good checkpoint) if a step's
  loss or gradient is not finite; the bad update is never applied nor checkpointed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from alala_jax import evaluate as ev
from alala_jax import schema as sc
from alala_jax.data import batching, codec, datasets
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

  def __init__(self, total: int, start: int, stream=sys.stderr):
    self.total, self.start, self.stream = total, start, stream
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
          f"loss {metrics['loss']:.4f}  recon {metrics['recon']:.4f}  kl/dim "
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


def prepare(config, workdir: str | None = None):
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
  programs = Programs(root, spec, config)
  return data, programs, train_arrays, test_arrays, (train_rep, test_rep)


def train_and_evaluate(config, workdir: str, log=print) -> dict[str, Any]:
  """Trains (resuming from `workdir` if it holds checkpoints), then evaluates.

  Returns:
    The final evaluation dict (see `alala_jax.evaluate.evaluate`).
  """
  os.makedirs(workdir, exist_ok=True)
  tc = config.train
  data, programs, train_arrays, test_arrays, (train_rep, test_rep) = prepare(config, workdir)
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
  restored = restore_latest(mngr, state)
  if restored is not None:
    state = restored
    log(f"resumed from checkpoint at step {int(state.step)} in {mngr.directory}")
  writer = MetricWriter(os.path.join(workdir, "metrics.jsonl"))
  start = int(state.step)
  progress = Progress(tc.num_steps, start)
  paper_budget = 2_000_000 * 256 * 32
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
  metrics = None
  while step < tc.num_steps:
    batch = batching.batch_at(train_arrays, step, tc.batch_size, config.seed)
    state, metrics = programs.train_step(state, batch)
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
    if step % tc.checkpoint_every == 0 or step == tc.num_steps:
      check_finite(state)
      mngr.save(step, args=ocp.args.StandardSave(state))
  mngr.wait_until_finished()
  check_finite(state)

  t_eval = time.time()
  res = ev.evaluate(programs, state, data.train, data.test, train_arrays, test_arrays, config)
  res["eval_seconds"] = time.time() - t_eval
  writer.write(int(state.step), "final", {k: v for k, v in res.items()
                                          if isinstance(v, (int, float))})
  with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
    json.dump(res, f, indent=1, sort_keys=True)
  log(ev.format_summary(res))
  mngr.close()
  return res


def load_trained(workdir: str, config):
  """Programs, TrainState and data of a trained workdir (for generate / evaluate)."""
  data, programs, train_arrays, test_arrays, _ = prepare(config, workdir)
  mngr = checkpoint_manager(workdir, config.train.max_to_keep)
  template = programs.create_state(config.seed, batching.batch_at(
      train_arrays, 0, min(config.train.batch_size, batching.num_rows(train_arrays)),
      config.seed))
  state = restore_latest(mngr, template)
  mngr.close()
  if state is None:
    raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}")
  return data, programs, state, train_arrays, test_arrays
