"""alala_jax: tree-recursive VAEs for structured records (README.md).

`alala_jax.Synthesizer` (fit / sample / save / load) is imported lazily, so that importing a
submodule such as `alala_jax.runtime` does not start jax.
"""


def __getattr__(name: str):
  if name == "Synthesizer":
    from alala_jax.synthesizer import Synthesizer

    return Synthesizer
  raise AttributeError(f"module 'alala_jax' has no attribute {name!r}")
