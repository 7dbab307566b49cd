"""Samples for a run, from config: files read by the task's reader, or procedural engine data.

    source = "files":  REC jsonl (rec), COCO-format json (ovd; isr reads 3D-FRONT top views in COCO format),
                       QA jsonl (qa); image paths relative to image_root
    source = "engine": generated once into a directory under `cache_root` named by its settings (task, count, seed,
                       size, difficulty, QA families, photo, stratified, object count and scale: a changed
                       setting never reuses stale data), then read back through the same readers, so engine runs
                       exercise the real loading path
Paths may start with "~" (configs name data under the user's home).
"""
from __future__ import annotations

import os
import re

from syngrpo_jax.data import engine
from syngrpo_jax.data.coco_detection import read_coco_detection
from syngrpo_jax.data.front3d import read_front3d
from syngrpo_jax.data.qa_jsonl import read_qa
from syngrpo_jax.data.rec_jsonl import read_rec
from syngrpo_jax.data.sample import TASKS, Sample

SOURCES = ("files", "engine")


def read_files(task: str, path: str, image_root: str = "", *, split: str = "train") -> list[Sample]:
    if task not in TASKS:
        raise ValueError(f"data.task={task!r} is unknown; choose one of {TASKS}")
    path, image_root = os.path.expanduser(path or ""), os.path.expanduser(image_root or "")
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"data path {path!r} (task {task!r}) does not exist")
    root = image_root or os.path.dirname(os.path.abspath(path))
    if task == "rec":
        return read_rec(path, root, split=split)
    if task == "ovd":
        return read_coco_detection(path, root, task="ovd", split=split)
    if task == "isr":
        return read_front3d(path, root, split=split)
    return read_qa(path, root, split=split)


def engine_families(families: str) -> tuple[str, ...]:
    """The QA families named by a setting, separated by commas or "+" (config arguments split on commas):
    "cubes+sudoku"; "" or "all": every family."""
    names = tuple(f.strip() for f in re.split(r"[,+]", families or "") if f.strip())
    return engine.QA_CATEGORIES if names in ((), ("all",)) else names


def engine_samples(task: str, cache_root: str, *, num: int, seed: int, size: int, difficulty: int = 0,
                   families: str = "", photo: bool = False, stratified: bool = False,
                   split: str = "train", min_objects: int = 0, max_objects: int = 0,
                   object_scale: float = 1.0, repainted: float = 0.0) -> list[Sample]:
    """Engine data for `task`, generated under cache_root unless already there, read back with the readers.
    min_objects/max_objects: rec/ovd object count range (0, 0: the difficulty's); object_scale: object sizes;
    repainted: the share of rec/ovd scenes on vocabulary backgrounds (engine.EngineConfig.repainted)."""
    if task not in engine.ENGINE_TASKS:
        raise ValueError(f"data.task={task!r} has no engine generator (engine tasks: {engine.ENGINE_TASKS})")
    objects = (min_objects, max_objects) if (min_objects or max_objects) else None
    cfg = engine.EngineConfig(width=size, height=size, difficulty=difficulty or None,
                              families=engine_families(families), photo=photo, stratified=stratified, split=split,
                              objects=objects, object_scale=float(object_scale), repainted=repainted)
    name = f"{split}-{task}-n{num}-seed{seed}-{size}px-d{difficulty}"
    if task == "qa" and cfg.families != engine.QA_CATEGORIES:
        name += "-" + "+".join(cfg.families)
    name += "-photo" * photo + "-stratified" * stratified
    if objects:
        name += f"-o{min_objects}-{max_objects}"
    if object_scale != 1.0:
        name += f"-x{object_scale:g}"
    if repainted:
        name += f"-r{repainted:g}"
    cache_dir = os.path.join(cache_root, name)
    annotation = os.path.join(cache_dir, engine.ANNOTATION_FILES[task])
    if not os.path.isfile(annotation):
        engine.generate(cache_dir, task, num, seed=seed, cfg=cfg)
    return read_files(task, annotation, cache_dir, split=split)


def load_samples(data_cfg, cache_root: str, *, split: str = "train") -> list[Sample]:
    """The samples `data_cfg` (run_config's data section) describes, the first num_samples if set."""
    if data_cfg.source == "engine":
        e = data_cfg.engine
        samples = engine_samples(data_cfg.task, cache_root, num=e.num, seed=e.seed, size=e.size,
                                 difficulty=e.difficulty, families=e.get("families", ""),
                                 photo=e.get("photo", False), stratified=e.get("stratified", False), split=split,
                                 min_objects=e.get("min_objects", 0), max_objects=e.get("max_objects", 0),
                                 object_scale=e.get("object_scale", 1.0), repainted=e.get("repainted", 0.0))
    elif data_cfg.source == "files":
        samples = read_files(data_cfg.task, data_cfg.train_path, data_cfg.image_root, split=split)
    else:
        raise ValueError(f"data.source={data_cfg.source!r} is unknown; choose one of {SOURCES}")
    if data_cfg.num_samples:
        samples = samples[:data_cfg.num_samples]
    if not samples:
        raise ValueError(f"data: no samples (task {data_cfg.task!r}, source {data_cfg.source!r})")
    return samples
