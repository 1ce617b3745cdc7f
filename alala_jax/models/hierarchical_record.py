"""Paper 002's latent hierarchy on paper 000's record VAE (issue #15, "records").

`HierarchicalRecordVAE` keeps the record encoder and decoder (`models.record.RecordModel`) and
replaces the single Gaussian latent between them by an L-layer LVAE / LVAE+ / BIVA
(`models.hierarchical`):

  inference   e = mu(x), the record encoder's embedding [B, D_r] (its sigma-network is unused),
              read by the hierarchy's inference network as the images' pixels are;
              q(z_1..z_L | x) = the hierarchy's q given e
  generation  p(z) = the hierarchy's prior (z_L ~ N(0, I), the conditionals below);
              u = W act(d_0) [B, D_r], the generative path's output (what `p_out` gives the
              images' logits), is the record decoder's latent: p(x | z) = the record decoder
              at u, its Recon (loss, nll, fields) unchanged

So every term the core, the objectives and the record evaluators read stays as the record VAE
defines it: `recon.loss` is the field-weighted reconstruction per field, `kl` one row per
stochastic variable in nats, and `kl_scale` = 1 / latent_dim (the hierarchy's total size) keeps
paper 000's "beta per latent dimension". Generation samples the hierarchy's own prior
(ancestrally): the record task runs with `eval.generation_prior='tracked'` (the model's own
generation path), nothing is fitted on the latents. `l_above_k` (paper 002 Eq 3) scores
records with the record decoder's likelihood under the step-0 decoding schedules (teacher
forcing in every config of this project: the exact -log p(x | z)).

Variables: {'params': {'record': the record VAE's, 'q_...', 'p_...': the hierarchy's},
'batch_stats': the record VAE's (ScalarTuple whitening, the unused latent moments)}. The
encoder partition is the record encoder's and the hierarchy's inference network; multiscale
levels are not supported (one level).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from alala_jax.models import base
from alala_jax.models.hierarchical import HierarchicalVAE, config_from_model_config
from alala_jax.models.record import RecordModel

RECORD = "record"  # the record VAE's entry in params


@dataclasses.dataclass(frozen=True, eq=False)
class HierarchicalRecordVAE(HierarchicalVAE):
  """The record VAE with an L-layer latent hierarchy (module doc). `config.num_pixels` must be
  the record VAE's latent_dim (the embedding the hierarchy reads and the latent its output
  feeds)."""

  record: RecordModel = None  # required (checked)

  level_collections = {}
  # one model object per task, like RecordModel: identity equality and hash (the config-based
  # ones of HierarchicalVAE would equate two record models of one hierarchy config under jit)
  __eq__ = object.__eq__
  __hash__ = object.__hash__

  def __post_init__(self):
    super().__post_init__()
    if not isinstance(self.record, RecordModel):
      raise TypeError(f"record must be a RecordModel, got {type(self.record).__name__}")
    if self.config.num_pixels != self.record.latent_dim:
      raise ValueError(
        f"the hierarchy reads and feeds the record VAE's {self.record.latent_dim}-dim "
        f"embedding: config.num_pixels must be {self.record.latent_dim}, "
        f"got {self.config.num_pixels}"
      )

  @property
  def kl_scale(self) -> float:
    return 1.0 / self.latent_dim

  @property
  def num_fields(self) -> float:
    return self.record.num_fields

  @property
  def root(self):
    return self.record.root

  def describe(self) -> str:
    return f"record VAE with the latent hierarchy {super().describe()}"

  # -------------------------------------------------------------- the hooks --

  def _rvars(self, variables: dict) -> dict:
    return {**base.non_params(variables), "params": variables["params"][RECORD]}

  def _hvars(self, variables: dict) -> dict:
    return {"params": {k: v for k, v in variables["params"].items() if k != RECORD}}

  def _features(self, variables: dict, x: Any) -> tuple[jax.Array, Any]:
    posterior, enc = self.record.encode(self._rvars(variables), x)
    return posterior.mean, enc

  def _likelihood(self, variables, x, out, aux, *, key, step, train) -> base.Recon:
    return self.record.recon(self._rvars(variables), x, out, aux, key=key, step=step, train=train)

  def _decode_out(self, variables, out, key, greedy):
    return self.record.decode(self._rvars(variables), out, key, greedy=greedy)

  # -------------------------------------------------------------- interface --

  def init(self, key: jax.Array, x: Any) -> dict:
    """The record VAE's variables (key split(key)[0]) and the hierarchy's, data-initialised on
    the initial record encoder's embeddings of x (split(key)[1])."""
    k_rec, k_h = jax.random.split(key)
    rv = self.record.init(k_rec, x)
    feats = self.record.encode(rv, x)[0].mean
    hv = self.net.init(k_h, feats)["params"]
    return {**base.non_params(rv), "params": {RECORD: rv["params"], **hv}}

  def update_stats(self, variables, x, row_mask):
    return self.record.update_stats(self._rvars(variables), x, row_mask)

  def reconstruct(self, variables, x, key, *, greedy=False):
    """g(z̄(x)): decodes the mean path of q (every slot at its conditional mean)."""
    posterior, _ = self.encode(variables, x)
    return self.decode(variables, posterior.mean, key, greedy=greedy)

  def field_nll(self, variables, x, z, key) -> dict[str, jax.Array]:
    """The record decoder's per-field -log p(x_f | z) at the hierarchy's latents z [B, D]
    (`RecordModel.field_nll`)."""
    return self.record.field_nll(self._rvars(variables), x, self.logits(variables, z), key)

  def units(self, recon: base.Recon) -> jax.Array:
    return self.record.units(recon)

  def batch_metrics(self, recon: base.Recon, step) -> dict:
    return self.record.batch_metrics(recon, step)

  def partition(self, params: Any) -> Any:
    """'encoder': the record encoder (the record VAE's own partition) and the hierarchy's
    inference network ('q_...'); 'decoder': the rest."""
    hier = {k: v for k, v in params.items() if k != RECORD}
    return {
      **base.partition_by_top_level(hier, {k for k in hier if k.startswith("q_")}),
      RECORD: self.record.partition(params[RECORD]),
    }


def from_config(record: RecordModel, mc) -> HierarchicalRecordVAE:
  """The model of a `config.model.hierarchy` ConfigDict (`HierarchicalConfig`'s fields but
  num_pixels, which is the record VAE's latent_dim)."""
  return HierarchicalRecordVAE(config_from_model_config(mc, record.latent_dim), record=record)
