"""configs/qa.py: the data-engine training setting, the previous behaviour through arguments, consistent methods,
and data that loads through the real readers."""
import collections
import importlib.util
import os

import pytest

from syngrpo_jax import eval_data, methods
from syngrpo_jax.data.sources import load_samples

QA_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs",
                         "qa.py")


def get_config(arg=None):
    spec = importlib.util.spec_from_file_location("qa_config", QA_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def test_the_data_engine_setting():
    c = get_config()
    assert c.loss.kl_coef == 0.0 and c.rollout.temperature == 1.0 and c.reward.strict_qa is True
    assert c.data.sampling == "difficulty" and c.data.engine.stratified and c.data.engine.photo
    assert (c.data.task, c.data.source, c.data.engine.families) == ("qa", "engine", "")
    assert c.eval.splits.qa_test.stratified and not c.eval.splits.qa_test.get("photo", False)
    assert c.eval.splits.qa_test_photo.photo and c.eval.splits.qa_test_photo.seed != c.data.engine.seed
    for name, split in c.eval.splits.items():
        eval_data.split_fields(name, split)  # valid split settings


def test_previous_behaviour_through_arguments():
    c = get_config("kl=0.04,strict=false,sampling=uniform,stratified=false,photo=false")
    assert c.loss.kl_coef == 0.04 and c.reward.strict_qa is False and c.data.sampling == "uniform"
    assert not c.data.engine.stratified and not c.data.engine.photo and "qa_test_photo" not in c.eval.splits
    assert get_config("temperature=0.7").rollout.temperature == 0.7


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_every_method_is_consistent(method):
    c = get_config(f"method={method}")
    assert methods.check(c) == methods.get(method)
    assert c.loss.kl_coef == 0.0 and c.reward.strict_qa is True  # the method does not undo the setting


def test_contradicting_override_is_still_rejected():
    c = get_config("method=syn_grpo")
    c.reward.diversity = False
    with pytest.raises(ValueError, match="reward.diversity=False contradicts method='syn_grpo'"):
        methods.check(c)


def test_the_data_loads_through_the_readers(tmp_path):
    c = get_config("families=cubes+sudoku+geometry")
    c.data.engine.update(num=9, size=64)
    c.data.num_samples = 9
    samples = load_samples(c.data, str(tmp_path))
    cells = collections.Counter((s.meta["qa_category"], s.meta["difficulty"]) for s in samples)
    assert cells == {(f, d): 1 for f in ("cubes", "sudoku", "geometry") for d in (1, 2, 3)}
    assert all(s.image_size == (64, 64) and s.answer for s in samples)
    assert "photo" in os.listdir(tmp_path)[0] and "cubes+sudoku+geometry" in os.listdir(tmp_path)[0]
