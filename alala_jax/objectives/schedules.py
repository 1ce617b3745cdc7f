"""beta and scheduled-sampling schedules as optax-style functions of the step (paper 000 Sec 2.4,
3, 5, Table 1).

* beta: constant; linear warm-up beta_start -> beta_end over N steps; warm-up then cool-down
  0 -> beta_mid over N1 steps, then beta_mid -> beta_end over N2 steps.
* scheduled sampling (ground-truth probability): 'TF' = 1, 'AS' = 0, 'SS' = linear 1 -> 0 over N
  steps. Chosen independently for the Tuple and the String level. The paper's Table 1 schemes:
  TF, AS, SS, "Tuple SS + String TF", "Tuple AS + String TF".
"""

from __future__ import annotations

import optax

SCHEMES = {"TF": "teacher forcing", "AS": "always sampling", "SS": "scheduled sampling"}


def beta_schedule(
  kind: str,
  num_steps: int,
  beta_start: float = 0.0,
  beta_mid: float = 0.0,
  beta_end: float = 0.384,
  warmup_fraction: float = 1.0,
  cooldown_fraction: float = 0.0,
) -> optax.Schedule:
  """Returns step -> beta.

  Args:
    kind: 'constant' (beta_end), 'linear' (beta_start -> beta_end over warmup_fraction of the
      run, then constant) or 'warmup_cooldown' (beta_start -> beta_mid over warmup_fraction, then
      beta_mid -> beta_end over cooldown_fraction; augmented training uses 1/2 and 1/2).
    num_steps: length of the run.
  """
  warm = max(1, int(round(warmup_fraction * num_steps)))
  if kind == "constant":
    return optax.constant_schedule(beta_end)
  if kind == "linear":
    return optax.linear_schedule(beta_start, beta_end, warm)
  if kind == "warmup_cooldown":
    cool = max(1, int(round(cooldown_fraction * num_steps)))
    return optax.join_schedules(
      [
        optax.linear_schedule(beta_start, beta_mid, warm),
        optax.linear_schedule(beta_mid, beta_end, cool),
      ],
      [warm],
    )
  raise ValueError(f"unknown beta schedule {kind!r}: expected constant, linear, warmup_cooldown")


def teacher_schedule(scheme: str, num_steps: int, fraction: float = 1.0) -> optax.Schedule:
  """Returns step -> ground-truth input probability for 'TF', 'AS' or 'SS' (1 -> 0)."""
  if scheme == "TF":
    return optax.constant_schedule(1.0)
  if scheme == "AS":
    return optax.constant_schedule(0.0)
  if scheme == "SS":
    return optax.linear_schedule(1.0, 0.0, max(1, int(round(fraction * num_steps))))
  raise ValueError(f"unknown sampling scheme {scheme!r}: expected one of {sorted(SCHEMES)}")


def beta_extremes(cfg) -> tuple[float, ...]:
  """The beta values a configured schedule passes through at its ends (`config.objective`)."""
  if cfg.beta_schedule == "constant":
    return (cfg.beta_end,)
  if cfg.beta_schedule == "linear":
    return (cfg.beta_start, cfg.beta_end)
  return (cfg.beta_start, cfg.beta_mid, cfg.beta_end)
