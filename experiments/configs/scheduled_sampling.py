"""Paper 000 Table 1 row "Scheduled Sampling": beta 0 -> 0.384 and the schemes ramped over the run.

Command (embedded synthetic data, ~4 min on a 2-core CPU):
  python -m experiments.train --config=experiments/configs/scheduled_sampling.py --workdir=/tmp/scheduled_sampling
On the Vermont CSV (needs ../shared/data):
  python -m experiments.train --config=experiments/configs/scheduled_sampling.py:vermont --workdir=/tmp/vt_scheduled_sampling
Smoke check (< 1 min): append ':smoke'.

Paper (2M steps x 256 x 32 workers, Vermont), p-value mean / median / std: 0.215-0.247 / <0.01-0.0237 / 0.317-0.331, d_Lev 0.0865-0.0974 (paper's best: beta_end 0.384).
Our runs are orders of magnitude shorter: see BUILD_NOTES.md for measured numbers.
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  return table1(tuple_scheme="SS", string_scheme="SS", arg=arg)
