"""Engine split fields for object count, scale and repainted backgrounds: validated with the field named, and
passed to the engine."""
import re

import ml_collections
import pytest

from syngrpo_jax import eval_data


def config(splits):
    c = ml_collections.ConfigDict()
    c.eval = ml_collections.ConfigDict(dict(num_samples=0, splits=splits))
    return c


@pytest.mark.parametrize("split, message", [
    (dict(min_objects=0, max_objects=2), "eval.splits.bad.min_objects=0"),
    (dict(min_objects=3, max_objects=2), "eval.splits.bad.max_objects=2"),
    (dict(object_scale=2.5), "eval.splits.bad.object_scale=2.5"),
    (dict(repainted=1.5), "eval.splits.bad.repainted=1.5"),
    (dict(repainted="all"), "eval.splits.bad.repainted='all'"),
])
def test_bad_object_fields(tmp_path, split, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        eval_data.build_splits(config(dict(bad=dict(task="rec", **split))), str(tmp_path))


def test_object_fields_reach_the_engine(tmp_path):
    split = dict(task="rec", num=6, size=112, difficulty=1, min_objects=1, max_objects=1, object_scale=1.5)
    samples = eval_data.build_splits(config(dict(one=split)), str(tmp_path))["one"]
    assert len(samples) == 6
    for s in samples:
        x1, y1, x2, y2 = s.boxes[0]
        assert len(s.meta["object_colors"]) == 1 and (x2 - x1) / 112 >= 1.5 * 0.10 - 0.01


def test_a_repainted_split_holds_vocabulary_backgrounds(tmp_path):
    split = dict(task="rec", num=4, size=112, difficulty=1, min_objects=1, max_objects=1, repainted=1.0)
    samples = eval_data.build_splits(config(dict(one=split)), str(tmp_path))["one"]
    assert len(samples) == 4 and all("background_description" in s.meta for s in samples)
