r"""p-value of the model-free baseline that samples fields independently (BUILD_NOTES (a)).

python -m experiments.baseline --config=experiments/configs/default.py
python -m experiments.baseline --config=experiments/configs/tuple_ss_string_tf.py:vermont
"""

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Data configuration.", lock_config=True)
_N = flags.DEFINE_integer("num", 10000, "Records sampled.")


def main(argv):
  del argv
  import numpy as np

  from alala_jax.data import datasets
  from alala_jax.metrics import baselines, pvalue

  cfg = flags.FLAGS.config
  data = datasets.load(cfg.data)
  lat, lon = [f.strip() for f in cfg.eval.coord_fields.split(",")]
  coords = lambda rs: np.array([[getattr(r, lat), getattr(r, lon)] for r in rs])
  zf = cfg.eval.zip_field
  zs = pvalue.fit_zip_stats([getattr(r, zf) for r in data.train], coords(data.train))
  for name, recs in (
    ("independent fields", baselines.independent_fields(data.train, _N.value)),
    ("held-out test records", data.test),
  ):
    s = pvalue.summarize(pvalue.zip_pvalues(zs, [getattr(r, zf) for r in recs], coords(recs)))
    print(
      f"{data.source} | {name:22s} p-value mean {s['mean']:.4f}  median {s['median']:.4f}  "
      f"std {s['std']:.4f}"
    )


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
