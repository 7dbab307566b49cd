"""`python -m syngrpo_jax.plots`: see syngrpo_jax/plots/__init__.py."""
from syngrpo_jax.plots import main

main()
