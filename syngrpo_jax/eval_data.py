"""Evaluation splits from the run config: named sample sets, read from annotation files or made by the data engine.

    c.eval.splits.rec_val = dict(task="rec", source="engine", num=200, seed=1, size=224, difficulty=0)
    c.eval.splits.refcoco_val = dict(task="rec", source="files", path="/data/rec_jsons_processed/refcoco_val.json",
                                     image_root="/data/coco/train2014")
    c.eval.splits.coco_ovd = dict(task="ovd", source="files", path="/data/coco/annotations/instances_val2017.json",
                                  image_root="/data/coco/val2017", max_boxes_per_category=10)

Fields of one split (`config.eval.splits.<name>`; the name labels its metrics, table columns and predictions):

  task                    rec | ovd | isr | qa
  source                  files | engine
  path                    files: the annotation file: REC jsonl/json (rec), COCO-format json (ovd; isr: 3D-FRONT
                          top views in COCO format), QA jsonl (qa); "~" expands to the home directory
  image_root              files: image paths in the file are relative to this ("": the file's directory)
  max_boxes_per_category  files, ovd/isr: drop images where some category has more boxes than this (VLM-R1 and
                          Syn-GRPO evaluate COCO OVD with 10: a JSON box list cannot enumerate crowds); 0: keep all
  num                     engine: number of samples
  seed                    engine: generator seed. Take one other than data.engine.seed: the same seed draws the
                          same scenes as the training data
  size                    engine: image width = height in pixels (>= 64)
  difficulty              engine: 1, 2 or 3; 0 draws it per sample
  families                engine, qa: comma-separated QA families (data.qa.FAMILIES); "" all of them
  photo                   engine, qa: photo-like variants (data.photo)
  stratified              engine, qa: every (family, difficulty) equally often
  min_objects, max_objects  engine (rec, ovd): object count range; 0, 0: the difficulty's
  object_scale            engine (rec, ovd): object size factor (1: the engine's sizes)
  repainted               engine (rec, ovd): share of scenes on vocabulary backgrounds (the data server's kind of
                          image; engine.EngineConfig.repainted), 0-1

Fields a split leaves out take the defaults in SPLIT_DEFAULTS (`task` has none); an unknown field is an error (a
typo would otherwise silently evaluate something else). `config.eval.num_samples` (0: all) keeps the first N
samples of every split. Engine splits are generated once under `<data_dir>` (`sources.engine_samples`: a directory
per split name and settings, so changing a setting never reuses stale data) and read back through the readers, like training data.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from syngrpo_jax.data import engine, sources
from syngrpo_jax.data.coco_detection import read_coco_detection
from syngrpo_jax.data.sample import DETECTION_TASKS, TASKS, Sample
from syngrpo_jax.data.shape_scene import MAX_OBJECT_SCALE

log = logging.getLogger(__name__)

SPLIT_DEFAULTS: dict[str, Any] = dict(
    task="", source="engine", path="", image_root="", max_boxes_per_category=0,
    num=64, seed=1, size=112, difficulty=0, families="", photo=False, stratified=False,
    min_objects=0, max_objects=0, object_scale=1.0, repainted=0.0,
)


class SplitConfigError(ValueError):
    """A field of `eval.splits.<name>` has a bad value; the message names the field and the value."""

    def __init__(self, name: str, field: str, value: Any, reason: str):
        self.name, self.field, self.value = name, field, value
        super().__init__(f"eval.splits.{name}.{field}={value!r}: {reason}")


def split_fields(name: str, split: Mapping[str, Any]) -> dict[str, Any]:
    """The split's fields over SPLIT_DEFAULTS, validated (SplitConfigError naming the field and value)."""
    if not hasattr(split, "items"):
        raise SplitConfigError(name, "", split, "a split is a dict of fields (task, source, ...)")
    unknown = sorted(set(split.keys()) - set(SPLIT_DEFAULTS))
    if unknown:
        raise SplitConfigError(name, unknown[0], split[unknown[0]],
                               f"unknown field; a split has the fields {sorted(SPLIT_DEFAULTS)}")
    f = {**SPLIT_DEFAULTS, **dict(split.items())}
    for field in ("path", "image_root"):  # configs name data under the user's home: "~/data/..."
        if isinstance(f[field], str) and f[field]:
            f[field] = os.path.expanduser(f[field])
    if f["task"] not in TASKS:
        raise SplitConfigError(name, "task", f["task"], f"unknown task; choose one of {list(TASKS)}")
    if f["source"] not in sources.SOURCES:
        raise SplitConfigError(name, "source", f["source"], f"unknown source; choose one of {list(sources.SOURCES)}")
    if f["source"] == "files":
        if not f["path"]:
            raise SplitConfigError(name, "path", f["path"], "source='files' needs the annotation file")
        if not os.path.isfile(f["path"]):
            raise SplitConfigError(name, "path", f["path"], "no such file")
        if f["image_root"] and not os.path.isdir(f["image_root"]):
            raise SplitConfigError(name, "image_root", f["image_root"], "no such directory")
        limit = f["max_boxes_per_category"]
        if not isinstance(limit, int) or limit < 0:
            raise SplitConfigError(name, "max_boxes_per_category", limit, "must be an int >= 0 (0: keep all)")
    else:
        if f["task"] not in engine.ENGINE_TASKS:
            raise SplitConfigError(name, "task", f["task"], f"the data engine makes {list(engine.ENGINE_TASKS)}; "
                                                            "this task needs source='files'")
        for field, low in (("num", 1), ("size", 64), ("seed", 0)):
            if not isinstance(f[field], int) or f[field] < low:
                raise SplitConfigError(name, field, f[field], f"must be an int >= {low}")
        if f["difficulty"] not in (0, 1, 2, 3):
            raise SplitConfigError(name, "difficulty", f["difficulty"], "must be 1, 2, 3, or 0 (drawn per sample)")
        for field in ("photo", "stratified"):
            if not isinstance(f[field], bool):
                raise SplitConfigError(name, field, f[field], "must be True or False")
        if not isinstance(f["families"], str) or any(
                x not in engine.QA_CATEGORIES for x in sources.engine_families(f["families"])):
            raise SplitConfigError(name, "families", f["families"],
                                   f"comma-separated names from {list(engine.QA_CATEGORIES)} ('' for all)")
        lo, hi = f["min_objects"], f["max_objects"]
        if not (isinstance(lo, int) and isinstance(hi, int)) or not ((lo, hi) == (0, 0) or 1 <= lo <= hi):
            raise SplitConfigError(name, "max_objects" if isinstance(lo, int) and lo >= 1 else "min_objects",
                                   hi if isinstance(lo, int) and lo >= 1 else lo,
                                   "min_objects <= max_objects, both >= 1 (or both 0: the difficulty's range)")
        if not isinstance(f["object_scale"], (int, float)) or not 0.5 <= f["object_scale"] <= MAX_OBJECT_SCALE:
            raise SplitConfigError(name, "object_scale", f["object_scale"], f"must be in [0.5, {MAX_OBJECT_SCALE}]")
        if isinstance(f["repainted"], bool) or not isinstance(f["repainted"], (int, float)) \
                or not 0 <= f["repainted"] <= 1:
            raise SplitConfigError(name, "repainted", f["repainted"], "must be a share in [0, 1]")
    return f


def read_split(name: str, f: Mapping[str, Any], data_dir: str) -> list[Sample]:
    """All samples of the split with validated fields `f` (engine splits are generated under data_dir if needed)."""
    if f["source"] == "engine":
        return sources.engine_samples(f["task"], data_dir, num=f["num"], seed=f["seed"], size=f["size"],
                                      difficulty=f["difficulty"], families=f["families"], photo=f["photo"],
                                      stratified=f["stratified"], split=name, min_objects=f["min_objects"],
                                      max_objects=f["max_objects"], object_scale=f["object_scale"],
                                      repainted=f["repainted"])
    if f["task"] in DETECTION_TASKS:
        return read_coco_detection(f["path"], f["image_root"] or None, task=f["task"], split=name,
                                   max_boxes_per_category=f["max_boxes_per_category"] or None)
    return sources.read_files(f["task"], f["path"], f["image_root"], split=name)


def build_splits(config, data_dir: str) -> dict[str, list[Sample]]:
    """{split name: samples} for every split in `config.eval.splits` (the first eval.num_samples of each)."""
    splits = config.eval.splits
    if not splits:
        raise ValueError("eval.splits is empty: name at least one split, e.g. "
                         "c.eval.splits.rec_val = dict(task='rec', source='engine', num=100, seed=1)")
    limit = config.eval.num_samples
    if not isinstance(limit, int) or limit < 0:
        raise ValueError(f"eval.num_samples={limit!r}: must be an int >= 0 (0: all)")
    fields = {name: split_fields(name, split) for name, split in splits.items()}  # all checked before any work
    data = config.get("data")
    out = {}
    for name, f in fields.items():
        if (data is not None and data.get("source") == "engine" and f["source"] == "engine"
                and data.get("task") == f["task"] and data.engine.seed == f["seed"]):
            log.warning("eval.splits.%s.seed=%d equals data.engine.seed: the split draws the training scenes",
                        name, f["seed"])
        samples = read_split(name, f, data_dir)
        if limit:
            samples = samples[:limit]
        if not samples:
            raise SplitConfigError(name, "path" if f["source"] == "files" else "num",
                                   f["path"] if f["source"] == "files" else f["num"], "the split has no samples")
        out[name] = samples
    return out
