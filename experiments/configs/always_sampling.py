"""Paper 000 Table 1 row "Always Sampling": beta 0 -> 0.384 and the schemes ramped over the run.

Command (embedded synthetic data, ~4 min on a 2-core CPU):
  python -m experiments.train --config=experiments/configs/always_sampling.py --workdir=/tmp/always_sampling
On the Vermont CSV (needs ../shared/data):
  python -m experiments.train --config=experiments/configs/always_sampling.py:vermont --workdir=/tmp/vt_always_sampling
Smoke check (< 1 min): append ':smoke'.

Paper (2M steps x 256 x 32 workers, Vermont), p-value mean / median / std: 0.173 / <0.01 / 0.294, d_Lev 0.0306 (beta_end 0.384).
Our runs are orders of magnitude shorter: see BUILD_NOTES.md for measured numbers.
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  return table1(tuple_scheme="AS", string_scheme="AS", arg=arg)
