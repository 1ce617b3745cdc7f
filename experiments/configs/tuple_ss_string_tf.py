"""Paper 000 Table 1 row "Tuple SS + String TF": beta 0 -> 0.384 and the schemes ramped over the run.

Command (embedded synthetic data, ~4 min on a 2-core CPU):
  python -m experiments.train --config=experiments/configs/tuple_ss_string_tf.py --workdir=/tmp/tuple_ss_string_tf
On the Vermont CSV (needs ../shared/data):
  python -m experiments.train --config=experiments/configs/tuple_ss_string_tf.py:vermont --workdir=/tmp/vt_tuple_ss_string_tf
Smoke check (< 1 min): append ':smoke'.

Paper (2M steps x 256 x 32 workers, Vermont), p-value mean / median / std: 0.246-0.261 / 0.0450-0.0606 / 0.321-0.329, d_Lev 0.114-0.111.
Our runs are orders of magnitude shorter: see BUILD_NOTES.md for measured numbers.
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  return table1(tuple_scheme="SS", string_scheme="TF", arg=arg)
