"""`train_and_evaluate(config, workdir)`: the whole training run, importable from a notebook.

* resumes automatically from the latest orbax checkpoint in ``workdir/checkpoints``;
* knows no model, objective or data set: `config.task` names a task (`alala_jax.tasks`) that
  builds them, and the objective's phase at each step names the compiled step that runs;
* writes ``workdir/config.json``, the task's files (records: ``spec.json``, the vocabulary and
  field sizes) and JSON-lines metrics to ``workdir/metrics.jsonl``;
* reads the batch of each step at ``state.data_position`` (batches consumed), not ``step``;
* shows a tqdm progress bar (step, steps/s, ETA, losses) updated every ``log_every`` steps;
* stops with `NonFiniteLossError` (naming the step and the last good checkpoint) at the next
  log or checkpoint step after a step whose loss or gradient was not finite; that step's
  update is never applied, and no checkpoint is written after it;
* survives kill -9 at any moment (`experiments/kill9.py`, results/kill9_campaign.md): orbax
  finalises a checkpoint by renaming its temporary directory, the small files are replaced
  atomically (`alala_jax.files`), and a resumed run first drops the metrics.jsonl rows written
  after its checkpoint, so the resumed run is bit-identical to an uninterrupted one;
* with `train.validation` (train/validation.py) checks a held-out bound every epoch (or
  `every` steps), keeps the best checkpoint in ``workdir/best_checkpoint`` (what
  `train_and_evaluate`, `load_trained` and `load_model` then use), halves the lr on a plateau
  and stops after the last halving;
* refuses to resume under a config that changes what the checkpoint means (another β, data
  file or seed: `config_diff.ConfigChangedError` names each key) unless
  ``train.allow_config_change``; changes of length, logging and evaluation are logged;
* a failed checkpoint save (a full disk) stops the run with `CheckpointSaveError`, naming the
  step, the cause and the last complete checkpoint, which stays restorable.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
import tqdm

from alala_jax import files, tasks
from alala_jax.data import batching
from alala_jax.tasks.base import Task
from alala_jax.train import config_diff, optim, sharding, validation
from alala_jax.train.state import TrainState

ConfigChangedError = config_diff.ConfigChangedError


class NonFiniteLossError(FloatingPointError):
  pass


class CheckpointSaveError(OSError):
  """Writing a checkpoint failed (e.g. the disk is full); the message names the step, the
  cause and the last checkpoint that was completely written (restorable)."""


class MetricWriter:
  """Appends one JSON object per line: {"step": s, "split": ..., metric: value, ...}."""

  def __init__(self, path: str):
    self.path = path

  def rewind(self, step: int, drop_final: bool = False) -> int:
    """Drops the rows after `step` and a torn last line (a run killed mid-write), so that a run
    resuming from its checkpoint at `step` writes each row once; with `drop_final` also the
    'final' evaluation rows at `step` (an evaluation about to write its row again). Returns the
    rows dropped; the file is replaced atomically."""
    if not os.path.exists(self.path):
      return 0
    with open(self.path) as f:
      text = f.read()
    lines = text.split("\n")
    keep, dropped = [], 0
    for line in lines:
      if not line:
        continue
      try:
        row = json.loads(line)
        row_step, final = row["step"], row.get("split") == "final"
      except (json.JSONDecodeError, KeyError, TypeError):
        row_step, final = None, False
      if row_step is None or row_step > step or (drop_final and final and row_step == step):
        dropped += 1
      else:
        keep.append(line)
    if dropped or (text and not text.endswith("\n")):  # the next row starts on its own line
      files.write_atomic(self.path, "".join(f"{line}\n" for line in keep))
    return dropped

  def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
    row = {"step": int(step), "split": split, "time": time.time()}
    row.update({k: float(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")


class Progress:
  """The training progress bar (tqdm): steps, steps/s, ETA and the latest losses, updated every
  `log_every` steps. The clock starts at the first report, after compilation. On a terminal it
  redraws one line; otherwise (a log file, CI) every update is printed as its own line."""

  def __init__(self, total: int, start: int, stream=sys.stderr, latent_label: str = "kl"):
    self.total, self.start, self.stream = total, start, stream
    self.latent_label = latent_label
    self.tty = bool(getattr(stream, "isatty", lambda: False)())
    self.bar = None

  def __call__(self, step: int, metrics: dict[str, float], extra: str = "") -> None:
    latent = metrics.get(self.latent_label, metrics["kl"])
    beta = f"  beta {metrics['beta']:.3f}" if "beta" in metrics else ""
    post = (
      f"loss {metrics['loss']:.4f}  recon {metrics['recon']:.4f}  {self.latent_label} "
      f"{latent:.4f}{beta}" + extra
    )
    if self.bar is None:  # first report: the time until here was compilation
      self.bar = tqdm.tqdm(
        total=self.total,
        initial=step,
        unit="step",
        file=self.stream if self.tty else io.StringIO(),
        dynamic_ncols=self.tty,
        mininterval=0.0,
        smoothing=0.1,
      )
    else:
      self.bar.update(step - self.bar.n)
    self.bar.set_postfix_str(post, refresh=self.tty)
    if not self.tty:
      print(str(self.bar), file=self.stream, flush=True)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def checkpoint_manager(workdir: str, max_to_keep: int) -> ocp.CheckpointManager:
  return checkpoint_manager_at(os.path.join(workdir, "checkpoints"), max_to_keep)


def checkpoint_manager_at(directory: str, max_to_keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
    os.path.abspath(directory),
    options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
  )


def _finalized_steps(directory) -> list[int]:
  """The steps whose checkpoint orbax finalised (renamed from its temporary directory)."""
  try:
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit())
  except FileNotFoundError:
    return []


def _root_cause(e: BaseException, stop: BaseException | None = None) -> BaseException:
  """The innermost exception of a chain (orbax wraps the OSError of a write several times),
  not descending into `stop` (an exception that was propagating when `e` was raised)."""
  seen = set()
  while id(e) not in seen:
    seen.add(id(e))
    nxt = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    if nxt is None or nxt is stop:
      break
    e = nxt
  return e


def _save_error(
  mngr: ocp.CheckpointManager, step: int | None, e: BaseException, during=None
) -> CheckpointSaveError:
  cause = _root_cause(e, during)
  steps = _finalized_steps(mngr.directory)
  last = f"step {steps[-1]}" if steps else "none"
  return CheckpointSaveError(
    f"saving the checkpoint of step {step} to {mngr.directory} failed: "
    f"{type(cause).__name__}: {cause}. The last complete checkpoint ({last}) is intact; free "
    "space (or fix the cause) and run again to resume from it"
  )


class _Saver:
  """Orbax's asynchronous saves with errors that name the step: a save's failure surfaces
  when the next save (or the end of the run) waits for it."""

  def __init__(self, mngr: ocp.CheckpointManager):
    self.mngr, self.pending = mngr, None

  def wait(self, during: BaseException | None = None) -> None:
    try:
      self.mngr.wait_until_finished()
    except Exception as e:
      step, self.pending = self.pending, None
      raise _save_error(self.mngr, step, e, during) from e
    self.pending = None

  def save(self, step: int, state: TrainState) -> None:
    self.wait()
    try:
      saved = self.mngr.save(step, args=ocp.args.StandardSave(state))
    except Exception as e:
      raise _save_error(self.mngr, step, e) from e
    if not saved:
      raise CheckpointSaveError(
        f"orbax did not save step {step} in {self.mngr.directory} (its latest step there is "
        f"{self.mngr.latest_step()}): a checkpoint of another run?"
      )
    self.pending = step

  def close(self, during: BaseException | None = None) -> None:
    """Waits for the save in flight and closes the manager. `during`: the exception the run
    is stopping with; a save error is then added to it as a note, so that it stays the error
    the caller sees."""
    try:
      self.wait(during)
    except CheckpointSaveError as save_error:
      if during is None:
        raise
      during.add_note(str(save_error))
    finally:
      self.mngr.close()


OPTIONAL_FIELDS = ("strategy_state", "validation")  # TrainState fields added after
# checkpoints were first written; None when their feature is off


def restore_latest(mngr: ocp.CheckpointManager, template: TrainState) -> TrainState | None:
  return _restore_step(mngr, mngr.latest_step(), template)


def _restore_step(mngr: ocp.CheckpointManager, step, template: TrainState) -> TrainState | None:
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
  try:
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  except ValueError as e:
    absent = [f for f in OPTIONAL_FIELDS if getattr(template, f) is None and f in str(e)]
    if not absent:
      raise
  # a checkpoint written before TrainState had an optional field that this run keeps None
  # (plain training, no validation rule; orbax's error names it): restore the other fields
  fields = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(abstract)}
  for f in absent:
    del fields[f]
  restored = mngr.restore(step, args=ocp.args.StandardRestore(fields))
  return template.replace(**restored)


def prepare(config, workdir: str | None = None) -> Task:
  """The task of `config.task` with its data loaded and its trainer built (reusable across
  runs of that config); the spec is read from `workdir` if it holds one."""
  return tasks.build(config, workdir)


def train(
  config, workdir: str, task: Task | None = None, log=print, stop_at: int | None = None
) -> tuple[TrainState, Task]:
  """Trains to `config.train.num_steps`, resuming from `workdir` if it holds checkpoints.

  Args:
    config: the experiment ConfigDict.
    workdir: checkpoints, metrics.jsonl, config.json and the task's files go here.
    task: reuse the data and compiled trainer of an earlier `prepare(config)`.
    log: where progress and notes are printed.
    stop_at: stop (with a checkpoint) at this step instead of `num_steps`, as if the run were
      interrupted there; schedules still follow `num_steps`.

  Returns:
    (final TrainState, Task).

  Raises:
    NonFiniteLossError: a step's loss or gradient was not finite.
    CheckpointSaveError: a checkpoint could not be written (e.g. the disk is full); the last
      complete checkpoint stays restorable.
    ConfigChangedError: `workdir` holds checkpoints of a run whose config.json differs from
      `config` in a key that changes the run (`config_diff`).
  """
  os.makedirs(workdir, exist_ok=True)
  tc = config.train
  if _finalized_steps(os.path.join(workdir, "checkpoints")):
    config_diff.check(workdir, config, log)  # before anything is rewritten
  task = task or prepare(config, workdir)
  trainer = task.trainer
  task.save(workdir)
  files.write_atomic(
    os.path.join(workdir, config_diff.CONFIG_FILE), config.to_json_best_effort(indent=1)
  )
  for line in task.notes():
    log(line)

  mngr = checkpoint_manager(workdir, tc.max_to_keep)
  saver = _Saver(mngr)
  t_compile = time.time()
  state = trainer.create_state(config.seed, task.example_batch(tc.batch_size, config.seed))
  mesh = sharding.mesh_from_config(tc.get("mesh", ""))
  if mesh is not None:
    state = jax.device_put(state, sharding.state_shardings(state, mesh, trainer.setup))
    log(
      f"mesh: {dict(mesh.shape)} over {mesh.devices.size} devices (levels over 'beta', "
      "rows over ('beta', 'data'))"
    )
  restored = restore_latest(mngr, state)
  if restored is not None:
    state = restored
    log(f"resumed from checkpoint at step {int(state.step)} in {mngr.directory}")
  writer = MetricWriter(os.path.join(workdir, "metrics.jsonl"))
  start, position = int(state.step), int(state.data_position)
  dropped = writer.rewind(start)
  if dropped:
    log(f"metrics.jsonl: dropped {dropped} rows written after step {start} (or torn)")
  progress = Progress(tc.num_steps, start, latent_label=trainer.objective.latent_label)

  def check_finite(st: TrainState):
    bad = int(st.bad_step)
    if bad >= 0:
      raise NonFiniteLossError(
        f"non-finite loss or gradient at step {bad}; its update was skipped and the run "
        f"stopped at step {int(st.step)}. Last good checkpoint: step {mngr.latest_step()} "
        f"in {mngr.directory}"
      )

  batch_at = batching.Stream(
    task.train_arrays,
    tc.batch_size,
    config.seed,
    put=None if mesh is None else lambda b: jax.device_put(b, sharding.batch_sharding(mesh)),
  )

  strategy = trainer.setup.strategy
  host = strategy.host_state(state)
  step = start
  end = tc.num_steps if stop_at is None else min(stop_at, tc.num_steps)
  checks = None
  try:
    checks = _Validation.start(config, task, state, workdir, log)
    if checks is not None and checks.host["stopped"]:
      log(f"training stopped at step {start} by train.validation (its last lr halving)")
      end = start
    phase = None
    while step < end:
      if trainer.phase_at(step) != phase:
        phase = trainer.phase_at(step)
        if step > start:
          log(f"step {step}: phase '{phase}' starts; compiling its step")
      state, metrics, position = strategy.advance(trainer, state, step, position, batch_at, host)
      step += 1
      if step == start + 1 and step > 0:
        jax.block_until_ready(state)
        log(f"first step (compilation included) took {time.time() - t_compile:.1f} s")
      was = dict(host)
      state, host, strategy_metrics = strategy.after_step(task, state, step, host, config)
      if strategy_metrics:
        writer.write(step, "strategy", strategy_metrics)
        if host != was and host.get("aggressive") is False and was.get("aggressive"):
          log(f"step {step}: held-out MI stopped rising; leaving aggressive training")
      if step % tc.log_every == 0 or step == tc.num_steps:
        check_finite(state)
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        m["data_position"] = position
        writer.write(step, "train", m)
        extra = task.progress_extra(m)
        if "inner_steps" in m:  # aggressive training: encoder steps before this decoder step
          extra += f"  inner {int(m['inner_steps'])} (batches {position})"
        if tc.eval_every > 0 and (step % tc.eval_every == 0 or step == tc.num_steps):
          losses = task.periodic_eval(state, config)
          writer.write(step, "eval", losses)
          extra += "  | " + "  ".join(
            f"{k} {v:.4f}" for k, v in losses.items() if k in ("test/loss", "generated/loss")
          )
        progress(step, m, extra)
      checked = checks is not None and step % checks.rule.every == 0
      if checked:  # held-out check: lr halving, best checkpoint, stop (saves this step)
        check_finite(state)
        state = checks(state, step, writer, saver)
        if checks.host["stopped"]:
          end = step
      if not checked and (step % tc.checkpoint_every == 0 or step == end):
        check_finite(state)
        saver.save(step, state)
  except BaseException as e:  # a save in flight completes even if the run stops
    progress.close()
    saver.close(during=e)
    if checks is not None:
      checks.saver.close(during=e)
    raise
  progress.close()
  saver.close()
  if checks is not None:
    checks.saver.close()
  check_finite(state)
  return state, task


class _Validation:
  """The loop's side of `train.validation` (train/validation.py): the checks, the kept best
  checkpoint (``workdir/best_checkpoint``, one step) and the reload of the best parameters.

  Order at a check of step s: update the rule's state; reload the best parameters if the
  rule halves with `restore_best`; write the regular checkpoint of s and wait for it; then, if
  s is a new best, write it as the best checkpoint. So a best checkpoint never runs ahead of
  the regular ones, and a kill between the two leaves only the best of the resumed step
  itself missing, which `start` writes again from the restored (identical) state."""

  def __init__(self, rule, config, task, workdir: str, log, host: dict):
    self.rule, self.config, self.task, self.log, self.host = rule, config, task, log, host
    self.mngr = checkpoint_manager_at(os.path.join(workdir, validation.BEST_DIR), 1)
    self.saver = _Saver(self.mngr)

  @classmethod
  def start(cls, config, task: Task, state: TrainState, workdir: str, log):
    n_train = batching.num_rows(task.train_arrays)
    rule = validation.from_config(config, n_train // int(config.train.batch_size))
    if rule is None:
      return None
    self = cls(rule, config, task, workdir, log, validation.to_host(state.validation))
    best = self.host["best_step"]
    stale = [s for s in self.mngr.all_steps() if best < 0 or s > best]
    if stale:  # a best checkpoint of a run whose regular checkpoints were removed
      log(f"validation: removing best checkpoint(s) {stale} of an earlier run from {workdir}")
      for s in stale:
        self.mngr.delete(s)
    if best >= 0 and best not in self.mngr.all_steps():
      if best != int(state.step):
        raise FileNotFoundError(
          f"the best checkpoint (step {best}) is missing from {self.mngr.directory}; the "
          f"regular checkpoint of step {int(state.step)} expects it"
        )
      self.saver.save(best, state)  # killed between the two saves of that check
      self.saver.wait()
    log(
      f"validation: {rule.metric} every {rule.every} steps; lr x {rule.factor} after "
      f"{rule.patience} check(s) without improvement after step {rule.min_steps}"
      + (", every check from then on" if rule.sticky else "")
      + (f"; stop at halving {rule.max_decays}" if rule.max_decays else "")
      + ("; a halving reloads the best parameters" if rule.restore_best else "")
      + f"; best kept in {self.mngr.directory}"
    )
    return self

  def __call__(self, state: TrainState, step: int, writer: MetricWriter, saver: _Saver):
    metrics = self.task.validation_metrics(state, self.config)
    if self.rule.metric not in metrics:
      raise KeyError(
        f"train.validation.metric {self.rule.metric!r} is not among this task's held-out "
        f"metrics {sorted(metrics)}"
      )
    value = metrics[self.rule.metric]
    self.host, ev = validation.check(self.host, value, step, self.rule)
    state = state.replace(validation=validation.to_device(self.host, state.validation))
    h = self.host
    writer.write(
      step,
      "valid",
      {
        **metrics,
        "lr_scale": h["lr_scale"],
        "best": h["best"],
        "best_step": h["best_step"],
        "decays": h["decays"],
      },
    )
    note = f"step {step}: {self.rule.metric} {value:.4f}"
    if ev.improved:
      note += " (new best)"
    if ev.halved:
      note += f"; lr x {h['lr_scale']:g} (halving {h['decays']})"
    if ev.restore and ev.improved:  # this step is the best (a sticky rule halves anyway)
      state = self.fresh_optimiser(state, state)
      note += "; fresh optimiser states"
    elif ev.restore:
      state = self.fresh_optimiser(state, _restore_step(self.mngr, h["best_step"], state))
      note += f"; reloaded the parameters of step {h['best_step']}"
    if ev.stop:
      note += f"; training stops (best at step {h['best_step']}: {h['best']:.4f})"
    self.log(note)
    saver.save(step, state)
    saver.wait()
    if ev.improved:
      self.saver.save(step, state)
      self.saver.wait()
    return state

  def fresh_optimiser(self, state: TrainState, best: TrainState) -> TrainState:
    """`state` with `best`'s parameters, statistics and EMA, and fresh optimiser states
    (paper 001's code builds new optimisers; the lr schedules' counts carry on:
    `optim.fresh_state`); step, data position, key and the objective's and strategy's
    states stay."""
    tx = self.task.trainer.setup.tx
    opt = optim.fresh_state(tx, best.params, state.opt_state)
    opt = jax.device_put(opt, jax.tree.map(lambda a: a.sharding, state.opt_state))
    return state.replace(
      params=best.params,
      model_state=best.model_state,
      ema_params=best.ema_params,
      opt_state=opt,
    )


def train_and_evaluate(config, workdir: str, log=print, task: Task | None = None) -> dict[str, Any]:
  """Trains (resuming from `workdir`), then evaluates and prints every metric.

  Returns:
    The final evaluation dict of the task (records: `alala_jax.evaluate.evaluate`), also
    written to ``workdir/final_metrics.json`` and as the 'final' row of metrics.jsonl.
  """
  state, task = train(config, workdir, task, log=log)
  last = int(state.step)
  best = restore_best(workdir, config, state)
  if best is not None:
    log(f"evaluating the best checkpoint (step {int(best.step)}) by {_metric(config)}")
    state = best
  t_eval = time.time()
  res = task.final_eval(state, config)
  res["eval_seconds"] = time.time() - t_eval
  if best is not None:
    res["selected_by"], res["trained_steps"] = _metric(config), last
  task.save_final(workdir)
  writer = MetricWriter(os.path.join(workdir, "metrics.jsonl"))
  writer.rewind(last, drop_final=True)  # an evaluation of this run ran before
  writer.write(last, "final", {k: v for k, v in res.items() if isinstance(v, (int, float))})
  files.write_atomic(
    os.path.join(workdir, "final_metrics.json"), json.dumps(res, indent=1, sort_keys=True)
  )
  log(task.summary(res))
  return res


def restore_state(workdir: str, config, template: TrainState) -> TrainState:
  """The checkpoint of `workdir` (the best one of a run with `train.validation`, else the
  latest) in the shape of `template`; an error if none."""
  return _restore_or_raise(workdir, config, template)


def _metric(config) -> str:
  return config.train.validation.metric


def restore_best(workdir: str, config, template: TrainState) -> TrainState | None:
  """The kept best checkpoint of a run with `train.validation` (None without one)."""
  if not validation.enabled(config):
    return None
  directory = os.path.join(workdir, validation.BEST_DIR)
  if not _finalized_steps(directory):
    return None
  mngr = checkpoint_manager_at(directory, 1)
  try:
    return restore_latest(mngr, template)
  finally:
    mngr.close()


def _restore_or_raise(workdir: str, config, template: TrainState) -> TrainState:
  """The model of a workdir: its best checkpoint when the run selects by validation
  (`train.validation`), else its latest."""
  best = restore_best(workdir, config, template)
  if best is not None:
    return best
  mngr = checkpoint_manager(workdir, config.train.max_to_keep)
  state = restore_latest(mngr, template)
  mngr.close()
  if state is None:
    raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}")
  return state


def load_model(workdir: str, config) -> tuple[TrainState, Task]:
  """The TrainState (`restore_state`'s) and the task of a workdir, from its saved files and
  checkpoints alone (no training data needed: what generation uses)."""
  task = tasks.build_without_data(config, workdir)
  template = task.trainer.create_state(config.seed, task.example_batch(config.train.batch_size))
  return _restore_or_raise(workdir, config, template), task


def load_trained(workdir: str, config) -> tuple[TrainState, Task]:
  """The TrainState (`restore_state`'s) of a trained workdir with its data and trainer."""
  task = prepare(config, workdir)
  template = task.trainer.create_state(
    config.seed, task.example_batch(config.train.batch_size, config.seed)
  )
  return _restore_or_raise(workdir, config, template), task
