"""Logging for the command-line entry points (train, evaluate, export): one format, the same quiet libraries."""
from __future__ import annotations

import logging


def setup_logging() -> None:
    """Our INFO lines on stderr; libraries at WARNING (orbax logs every save and restore at INFO through absl)."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    ours = logging.getLogger("syngrpo_jax")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
