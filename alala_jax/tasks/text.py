"""The 'text' task: the LSTM text VAE of papers 001 / 004 (`alala_jax.models.text`).

Data: `config.data` as described by `alala_jax.data.text.default_config()` (an embedded corpus
by default; PTB, paper 001's or paper 004's synthetic oracle); model: `config.model` (sizes of
`TextVAEConfig`); evaluators: the objective's test loss every `eval_every` steps, and at the end
(`metrics/latent.evaluate_latent`, with the EMA parameters when the run keeps them) the test
ELBO terms, importance-weighted NLL (`config.eval.iw_samples`, chunked, float32 log space), PPL
from the IW-NLL and from the ELBO (tokens include </s>), KL, the mutual information with both
estimators (the reference's minibatch one, capped at log B, and the whole-test-set one, capped
at log N; each printed with its name), active units, and a few sampled sentences.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from alala_jax import objectives
from alala_jax.data import batching
from alala_jax.data import text as text_data
from alala_jax.metrics import latent
from alala_jax.models.oracle import OracleDecoderVAE
from alala_jax.models.text import TextVAE, TextVAEConfig
from alala_jax.tasks.base import Task
from alala_jax.train import state as state_lib
from alala_jax.train.trainer import Trainer

SAMPLES_TXT = "samples.txt"
MODEL_FIELDS = (
  "latent_dim",
  "embed_dim",
  "enc_hidden",
  "dec_hidden",
  "dec_dropout_in",
  "dec_dropout_out",
  "z_to_h0",
  "z_in_input",
  "z_in_output",
  "out_bias",
  "init_scale",
  "embed_init_scale",
)


def model_config(mc, vocab_size: int) -> TextVAEConfig:
  """`TextVAEConfig` from `config.model` (fields MODEL_FIELDS; absent ones keep defaults)."""
  kw = {k: mc[k] for k in MODEL_FIELDS if k in mc}
  return TextVAEConfig(vocab_size=vocab_size, **kw)


def num_tokens(batch) -> np.ndarray:
  """Predicted tokens per sentence (</s> included): what perplexity divides by."""
  return np.asarray(batch["length"])


class TextTask(Task):
  """Sentences: data, the LSTM VAE's trainer and the latent-variable evaluators."""

  name = "text"

  def __init__(self, config, data: text_data.TextData, oracle=None):
    self.config, self.data = config, data
    if oracle is not None:  # paper 004's oracle-generator rows: only the encoder trains
      self.model = OracleDecoderVAE(
        model_config(config.model, data.vocab_size), oracle, data.max_tokens - 2
      )
    else:
      self.model = TextVAE(model_config(config.model, data.vocab_size), data.max_tokens)
    n_train = batching.num_rows(data.train)
    setup = state_lib.make_setup(
      self.model,
      objectives.build(config, self.model),
      config,
      steps_per_epoch=n_train // config.train.batch_size,
    )
    self.trainer = Trainer(setup)
    self.train_arrays, self.test_arrays = data.train, data.test
    self.valid_arrays = data.valid
    self.workdir: str | None = None

  def num_tokens(self, batch) -> np.ndarray:
    """Scored tokens per sentence: n words + </s> (n for the oracle decoder, which has no
    end token)."""
    n = num_tokens(batch)
    return n - 1 if isinstance(self.model, OracleDecoderVAE) else n

  @classmethod
  def from_config(cls, config, workdir: str | None = None) -> "TextTask":
    """Loads the data; `config.model.decoder` 'oracle' (with an oracle source) makes the
    oracle that generated the data the fixed decoder (`models/oracle.py`)."""
    decoder = config.model.get("decoder", "lstm")
    if decoder == "oracle":
      source, dc = config.data.source, config.data
      makers = {
        "oracle_001": (text_data.oracle_001, 20000),
        "oracle_004": (text_data.oracle_004, 7000),
      }
      if source not in makers:
        raise ValueError(f"model.decoder 'oracle' needs an oracle data source, got {source!r}")
      make, default_n = makers[source]
      data, oracle = make(int(dc.get("seed", 0)), int(dc.get("num_sequences", 0)) or default_n)
      task = cls(config, data, oracle)
    elif decoder == "lstm":
      task = cls(config, text_data.load(config.data))
    else:
      raise ValueError(f"unknown model.decoder {decoder!r}: expected 'lstm' or 'oracle'")
    task.workdir = workdir
    return task

  def notes(self) -> list[str]:
    d = self.data
    c = getattr(self.model, "config", None) or self.model.encoder_config
    decoder = "the fixed oracle" if isinstance(self.model, OracleDecoderVAE) else "LSTM"
    sizes = ", ".join(
      f"{name} {batching.num_rows(a)}"
      for name, a in (("train", d.train), ("valid", d.valid), ("test", d.test))
      if a is not None
    )
    if c.latent_dim:
      what = (
        f"LSTM VAE, embeddings {c.embed_dim}, encoder {c.enc_hidden}, decoder {decoder} "
        f"{c.dec_hidden}, latent {c.latent_dim}"
      )
    else:
      what = f"LSTM language model (latent 0), embeddings {c.embed_dim}, LSTM {c.dec_hidden}"
    return [
      f"data: {d.source}: {d.notes}",
      f"  sentences: {sizes}; vocabulary {d.vocab_size}; {d.max_tokens} tokens per row",
      f"model: {what}, dropout {c.dec_dropout_in}/{c.dec_dropout_out}; "
      f"objective {self.trainer.objective.name}; strategy {self.trainer.setup.strategy.name}",
    ]

  def save(self, workdir: str) -> None:
    self.workdir = workdir

  def periodic_eval(self, state, config) -> dict[str, float]:
    """Mean objective loss, -log p(x|z) and KL over `eval_batches` test batches."""
    return self.test_loss_means(state, config)

  def final_eval(self, state, config) -> dict[str, Any]:
    """Every latent-variable metric on the test set (module doc) and sampled sentences."""
    ec = config.eval
    variables = self.trainer.variables(state)
    key = jax.random.key(config.seed + 7)
    data = self.test_arrays
    n_test = int(ec.get("num_test", 0))
    if n_test:
      data = batching.take(data, np.arange(min(n_test, batching.num_rows(data))))
    res: dict[str, Any] = {
      "step": int(state.step),
      "data_position": int(state.data_position),
      "params": "ema" if state.ema_params is not None else "raw",
    }
    out = latent.evaluate_latent(
      self.trainer.eval_model,
      variables,
      data,
      jax.random.fold_in(key, 1),
      batch_size=int(ec.get("batch_size", 100)),
      iw_samples=int(ec.get("iw_samples", 500)),
      iw_chunk=int(ec.get("iw_chunk", 50)),
      num_tokens_fn=self.num_tokens,
    )
    res.update({f"test/{k}": v for k, v in out.items() if k != "au_variances"})
    n = int(ec.get("num_samples_txt", 10))
    if n:
      gen = jax.device_get(self.trainer.generate(variables, jax.random.fold_in(key, 2), n, False))
      res["samples"] = [
        " ".join(text_data.decode_tokens(self.data.vocab, row)) for row in gen["tokens"]
      ]
      if self.workdir:
        with open(os.path.join(self.workdir, SAMPLES_TXT), "w") as f:
          f.write("\n".join(res["samples"]) + "\n")
    return res

  def summary(self, res: dict[str, Any]) -> str:
    lines = [
      f"evaluation at step {res['step']} ({res['params']} parameters, {res['data_position']} "
      f"batches consumed), {res['test/num_examples']} test sentences",
      f"  test ELBO {res['test/elbo']:.3f} nats  (-log p(x|z) {res['test/recon']:.3f}, "
      f"KL {res['test/kl']:.3f})",
      f"  test IW-NLL (k = {res['test/iw_samples']}) {res['test/iw_nll']:.3f} nats; "
      f"PPL {res['test/ppl_iw']:.2f} (IW), {res['test/ppl_elbo']:.2f} (ELBO), "
      f"{res['test/num_tokens']} tokens incl. </s>",
      f"  MI {res['test/mi_dataset']:.3f} nats (whole test set, cap "
      f"{res['test/mi_dataset_cap']:.2f}); {res['test/mi_minibatch']:.3f} (reference minibatch "
      f"estimator, cap {res['test/mi_minibatch_cap']:.2f});  active units {res['test/au']}",
    ]
    for s in res.get("samples", [])[:5]:
      lines.append(f"  sample: {s}")
    return "\n".join(lines)
