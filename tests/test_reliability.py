"""Training that survives kill -9, a NaN mid-run and a full disk (issue #16's reliability list).

The model is the test config with one level and no augmented training (`experiments.kill9`'s
'plain' campaign config: checkpoint every 3 steps), compiled once for the module.
"""

import contextlib
import copy
import json
import os
import re
import resource
import shutil
import signal
import subprocess

import chex
import jax
import numpy as np
import pytest

from alala_jax import files
from alala_jax.data import batching
from alala_jax.train import loop
from experiments import kill9

STEPS = 12


@pytest.fixture(scope="module")
def config():
  return kill9.campaign_config(STEPS, "plain")


@pytest.fixture(scope="module")
def prepared(config):
  return loop.prepare(config)


@pytest.fixture(scope="module")
def straight(config, prepared, tmp_path_factory):
  """An uninterrupted run: (final state, workdir)."""
  wd = str(tmp_path_factory.mktemp("straight"))
  state, _ = loop.train(config, wd, prepared, log=lambda s: None)
  return state, wd


def _train_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if json.loads(line)["split"] == "train"]


def test_metric_writer_rewind_drops_later_final_and_torn_rows(tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  w = loop.MetricWriter(path)
  for s in (1, 2, 3, 4, 5):
    w.write(s, "train", {"loss": float(s)})
  w.write(3, "final", {"x": 1.0})
  w.write(2, "eval", {"x": 2.0})
  with open(path, "a") as f:
    f.write('{"step": 6, "split": "tra')  # a run killed mid-write
  assert w.rewind(3) == 3  # steps 4, 5 and the torn line; the final row at 3 stays
  rows = lambda: [(r["step"], r["split"]) for r in map(json.loads, open(path))]
  assert rows() == [(1, "train"), (2, "train"), (3, "train"), (3, "final"), (2, "eval")]
  assert w.rewind(3, drop_final=True) == 1  # an evaluation of step 3 is about to write again
  assert rows() == [(1, "train"), (2, "train"), (3, "train"), (2, "eval")]
  assert w.rewind(3) == 0 and loop.MetricWriter(str(tmp_path / "none")).rewind(0) == 0
  with open(path, "a") as f:  # a complete last row without its newline: the next row
    f.write('{"step": 3, "split": "strategy"}')  # must not be appended to it
  assert w.rewind(3) == 0
  w.write(3, "train", {"loss": 1.0})
  assert rows()[-2:] == [(3, "strategy"), (3, "train")]


def test_save_error_names_the_write_failure_not_the_error_the_run_stopped_with(tmp_path):
  class Mngr:
    directory = str(tmp_path)

  try:
    raise loop.NonFiniteLossError("the run's own error")
  except loop.NonFiniteLossError as during:
    try:
      try:
        raise OSError(28, "No space left on device")
      except OSError as inner:
        raise ValueError("RESOURCE_EXHAUSTED: wrapped") from inner
    except ValueError as e:
      err = loop._save_error(Mngr(), 9, e, during)
  assert "step 9" in str(err) and "No space left on device" in str(err)
  assert "the run's own error" not in str(err) and "(none) is intact" in str(err)


def test_atomic_file_keeps_the_old_file_when_the_writer_fails(tmp_path):
  path = str(tmp_path / "spec.json")
  files.write_atomic(path, "old")
  with pytest.raises(RuntimeError), files.atomic_file(path) as f:
    f.write("half of the new")
    raise RuntimeError("killed")
  assert open(path).read() == "old" and os.listdir(tmp_path) == ["spec.json"]
  os.chmod(path, 0o640)
  files.write_atomic(path, "new")
  assert open(path).read() == "new" and os.listdir(tmp_path) == ["spec.json"]
  assert os.stat(path).st_mode & 0o777 == 0o640  # the file keeps its mode
  umask = os.umask(0o022)
  try:
    files.write_atomic(str(tmp_path / "fresh.json"), "x")  # a new file gets open()'s mode
  finally:
    os.umask(umask)
  assert os.stat(tmp_path / "fresh.json").st_mode & 0o777 == 0o644


def test_nan_mid_run_stops_keeps_the_last_good_checkpoint_and_resumes_with_a_lower_lr(
  config, prepared, tmp_path, monkeypatch
):
  wd = str(tmp_path / "run")
  clean = batching.batch_at

  def poisoned(arrays, position, *args):  # the batch of step 8 (position 7) holds a NaN
    batch = clean(arrays, position, *args)
    if position == 7:
      batch = dict(batch, __floats__=np.full_like(batch["__floats__"], np.nan))
    return batch

  monkeypatch.setattr(batching, "batch_at", poisoned)
  with pytest.raises(loop.NonFiniteLossError, match=r"at step 7; .*Last good checkpoint: step 6"):
    loop.train(config, wd, prepared, log=lambda s: None)
  monkeypatch.setattr(batching, "batch_at", clean)
  assert loop._finalized_steps(os.path.join(wd, "checkpoints")) == [3, 6]
  template = prepared.trainer.create_state(config.seed, prepared.example_batch(16, config.seed))
  good = loop.restore_state(wd, config, template)
  assert int(good.step) == 6 and int(good.bad_step) == -1
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(good.params))

  lower = copy.deepcopy(config)
  lower.optim.learning_rate = config.optim.learning_rate / 10
  task = loop.prepare(lower)
  change = f"optim.learning_rate: {config.optim.learning_rate!r} -> {lower.optim.learning_rate!r}"
  with pytest.raises(loop.ConfigChangedError, match=re.escape(change)):
    loop.train(lower, wd, task)  # a changed run must be asked for
  lower.train.allow_config_change = True
  logs = []
  state, _ = loop.train(lower, wd, task, log=logs.append)
  assert f"resuming with a changed config: {change}" in logs
  assert any("resumed from checkpoint at step 6" in s for s in logs)
  assert int(state.step) == STEPS and int(state.bad_step) == -1
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
  assert [r["step"] for r in _train_rows(wd)] == list(range(1, STEPS + 1))
  with open(os.path.join(wd, "config.json")) as f:  # the resumed run's config is the record
    assert json.load(f)["optim"]["learning_rate"] == lower.optim.learning_rate


def _mount_tmpfs(path) -> bool:
  if os.geteuid() != 0:
    return False
  cmd = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", path]
  return subprocess.run(cmd, capture_output=True).returncode == 0


@contextlib.contextmanager
def _small_disk(path, kind):
  """'tmpfs': a 16 MiB tmpfs at `path` (needs root; skipped otherwise); 'rlimit': a 48 KiB
  limit on file sizes for this process (RLIMIT_FSIZE, SIGXFSZ ignored so that a write fails
  with EFBIG instead of killing the process). Yields (fill, unfill): `fill()` leaves the tmpfs
  almost full or sets the limit."""
  os.makedirs(path)
  if kind == "tmpfs":
    if not _mount_tmpfs(path):
      pytest.skip("mounting a tmpfs needs root; the 'rlimit' case covers a size-limited write")
    filler = os.path.join(path, "filler")

    def fill():
      st = os.statvfs(path)
      with open(filler, "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize - 150_000))

    try:
      yield fill, lambda: os.remove(filler)
    finally:
      subprocess.run(["umount", "-l", path], check=True)
    return
  old = resource.getrlimit(resource.RLIMIT_FSIZE)
  old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  unlimit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, old)
  try:
    yield lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, old[1])), unlimit
  finally:
    unlimit()
    signal.signal(signal.SIGXFSZ, old_handler)


@pytest.mark.parametrize("kind", ["tmpfs", "rlimit"])
def test_disk_full_during_a_save_keeps_the_last_checkpoint_and_names_the_step(
  config, prepared, straight, tmp_path, kind
):
  with _small_disk(str(tmp_path / "disk"), kind) as (fill, unfill):
    wd = str(tmp_path / "disk" / "run")
    loop.train(config, wd, prepared, log=lambda s: None, stop_at=6)
    fill()
    try:
      with pytest.raises(loop.CheckpointSaveError) as err:
        loop.train(config, wd, prepared, log=lambda s: None)
    finally:
      unfill()
    msg = str(err.value)
    assert "checkpoint of step 9" in msg and "last complete checkpoint (step 6) is intact" in msg
    assert ("No space left on device" if kind == "tmpfs" else "File too large") in msg, msg
    ckpt = os.path.join(wd, "checkpoints")
    assert loop._finalized_steps(ckpt) == [3, 6]
    # with space again, the run resumes from step 6 and ends where the uninterrupted run ends
    logs = []
    state, _ = loop.train(config, wd, prepared, log=logs.append)
    assert any("resumed from checkpoint at step 6" in s for s in logs)
    chex.assert_trees_all_equal(state, straight[0])
    assert _train_rows(wd) and [r["step"] for r in _train_rows(wd)] == list(range(1, STEPS + 1))
    shutil.rmtree(wd)


@pytest.mark.slow
def test_kill9_campaign_resumes_bit_identically(tmp_path):
  """Two SIGKILLs (one during a save, then one at a random moment) of a training process; the
  campaign's 20-kill run is results/kill9_campaign.md."""
  res = kill9.run_campaign(
    2, STEPS, 0, str(tmp_path), model="plain", log=lambda s: None, save_delay_s=0.0
  )
  assert [k.mode for k in res["kills"]] == ["save", "random"] and res["kills"][0].during_save
  assert res["bit_identical"], res
  assert kill9.ok(res), res
