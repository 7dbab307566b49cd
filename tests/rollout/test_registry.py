"""The engine registry: names resolve to engines, unknown names are refused with the known ones listed."""
import pytest

from syngrpo_jax.rollout import registry
from syngrpo_jax.rollout.base import RolloutEngine


def test_unknown_engine_names_the_field_value_and_known_engines():
    with pytest.raises(ValueError, match=r"rollout.engine='nope'.*\['jax'"):
        registry.check_engine("nope")


def test_registered_callable_is_built_from_the_context():
    built = []

    class Fake(RolloutEngine):
        def __init__(self, ctx):
            built.append(ctx)

        def generate(self, requests, params):
            return []

        def update_weights(self, params, version):
            pass

        weight_version = 0

    registry.register_engine("fake_for_test", Fake)
    try:
        ctx = registry.EngineContext(model=None, tokenizer=None, model_dir="/x", config=None)
        engine = registry.make_engine("fake_for_test", ctx)
        assert isinstance(engine, Fake) and built == [ctx]
        assert "fake_for_test" in registry.engine_names()
    finally:
        registry._ENGINES.pop("fake_for_test")
    with pytest.raises(ValueError):
        registry.check_engine("fake_for_test")
