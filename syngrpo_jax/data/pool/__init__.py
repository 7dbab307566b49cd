"""The data pool: the training samples with their image versions, pass rates and batch sampler (see pool.py)."""
from syngrpo_jax.data.pool.errors import PoolError, UnknownSampleError
from syngrpo_jax.data.pool.pool import STATE_FORMAT, STATE_SCHEMA, STATE_VERSION, DataPool
from syngrpo_jax.data.pool.samplers import SAMPLING_MODES, difficulty_weights
from syngrpo_jax.data.pool.versions import Version, sanitize_id

__all__ = ["DataPool", "PoolError", "UnknownSampleError", "Version", "sanitize_id", "difficulty_weights",
           "SAMPLING_MODES", "STATE_FORMAT", "STATE_SCHEMA", "STATE_VERSION"]
