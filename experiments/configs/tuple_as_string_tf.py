"""Paper 000 Table 1 row "Tuple AS + String TF": beta 0 -> 0.384 and the schemes ramped over the run.

Command (embedded synthetic data, ~4 min on a 2-core CPU):
  python -m experiments.train --config=experiments/configs/tuple_as_string_tf.py --workdir=/tmp/tuple_as_string_tf
On the Vermont CSV (needs ../shared/data):
  python -m experiments.train --config=experiments/configs/tuple_as_string_tf.py:vermont --workdir=/tmp/vt_tuple_as_string_tf
Smoke check (< 1 min): append ':smoke'.

Paper (2M steps x 256 x 32 workers, Vermont), p-value mean / median / std: 0.240-0.249 / 0.0448-0.0505 / 0.317-0.322, d_Lev 0.184-0.149.
Our runs are orders of magnitude shorter: see BUILD_NOTES.md for measured numbers.
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  return table1(tuple_scheme="AS", string_scheme="TF", arg=arg)
