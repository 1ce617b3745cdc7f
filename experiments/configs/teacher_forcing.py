"""Paper 000 Table 1 row "Teacher Forcing": beta 0 -> 0.384 and the schemes ramped over the run.

Command (embedded synthetic data, ~4 min on a 2-core CPU):
  python -m experiments.train --config=experiments/configs/teacher_forcing.py --workdir=/tmp/teacher_forcing
On the Vermont CSV (needs ../shared/data):
  python -m experiments.train --config=experiments/configs/teacher_forcing.py:vermont --workdir=/tmp/vt_teacher_forcing
Smoke check (< 1 min): append ':smoke'.

Paper (2M steps x 256 x 32 workers, Vermont), p-value mean / median / std: 0.0178 / 0 / 0.0970, d_Lev 0.0961.
Our runs are orders of magnitude shorter: see BUILD_NOTES.md for measured numbers.
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  return table1(tuple_scheme="TF", string_scheme="TF", arg=arg)
