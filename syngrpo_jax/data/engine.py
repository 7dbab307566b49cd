"""The procedural data engine: verifiable perception data that costs nothing and is always right.

    python -m syngrpo_jax.data.engine --out=DIR --task=rec --num=200 --seed=0 --size=224
    python -m syngrpo_jax.data.engine --out=DIR --task=rec,ovd,qa --num=500 --size=160x120 --difficulty=3
    python -m syngrpo_jax.data.engine --out=DIR --task=rec --difficulty=1 --objects 1 3 --object_scale=1.8
    python -m syngrpo_jax.data.engine --out=DIR --task=rec --objects 1 1 --object_scale=1.8 --repainted=0.5

writes, into DIR, the same formats the readers read, so the real pipeline consumes engine data unchanged:

    images/{task}-{index:06d}.png   the rendered images (RGB PNG)
    rec.jsonl                       REC, simple layout          -> rec_jsonl.read_rec
    ovd.json                        OVD, COCO format             -> coco_detection.read_coco_detection
    qa.jsonl                        QA with exact answers        -> qa_jsonl.read_qa
    {task}_scenes.jsonl             the ground-truth scene of every sample (objects, expression, chart values,
                                    function parameters): what audits and tests recompute answers from

Tasks:
  rec  shape scenes with a referring expression that means exactly one object (see `referring`). Difficulty 1:
       few objects, attribute expressions; 2: confusable scenes (few shapes and colours), expressions that need
       two or three attributes; 3: spatial relations ("... to the left of the green triangle") and
       superlatives ("the topmost star"). The REC label is the expression (as VLM-R1 labels REC answers).
  ovd  shape scenes, every object a box labelled with its shape name ("circle", ...); the label set to detect
       is the shapes present plus up to two absent ones (written as LVIS `neg_category_ids`). Difficulty scales
       the number of objects (2-4, 4-7, 7-10) and the shape vocabulary.
  qa   questions with exact answers from the QA families (`qa.registry`): grid counting, cubes, bar and pie
       charts, Sudoku-style grids, function graphs, geometry; difficulty 1-3. `--photo` makes photo-like
       variants (`photo`: perspective, lighting, blur, noise, JPEG, paper); `--stratified` cycles through
       (family, difficulty) by sample index so every combination is equally represented.
For rec and ovd, `objects` (lo, hi) replaces the difficulty's object count range (a REC scene may then hold a
single object) and `object_scale` multiplies object sizes (both size classes alike): the embedded CPU demo uses
fewer, larger objects, which a tiny model learns to localise in minutes. `repainted` (0-1) draws that share of
rec/ovd scenes on a background the description vocabulary paints, with look-alike decoys when the description
says "hard" (`repaint`): the images Syn-GRPO's procedural data server makes, for a warm start that should know
them.

    python -m syngrpo_jax.data.engine --gallery=docs/engine_gallery.png   one example per family and difficulty

Deterministic: sample `index` of task `task` is drawn from `np.random.default_rng([seed, task_code, index])`
alone (no global RNG), so the same seed gives byte-identical files, and the first k samples do not depend on
`--num`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from syngrpo_jax.data import descriptions, photo, qa, records, referring, repaint
from syngrpo_jax.data.coco_detection import write_coco_detection
from syngrpo_jax.data.qa import DIFFICULTIES, QA_CATEGORIES
from syngrpo_jax.data.qa_jsonl import write_qa_jsonl
from syngrpo_jax.data.rec_jsonl import write_rec_jsonl
from syngrpo_jax.data.sample import Sample
from syngrpo_jax.data.shape_scene import (COLORS, MAX_OBJECT_SCALE, SHAPES, SIZES, render_scene, sample_scene,
                                          sub_vocabulary)

ENGINE_TASKS = ("rec", "ovd", "qa")
_TASK_CODES = {"rec": 1, "ovd": 2, "qa": 3}
ANNOTATION_FILES = {"rec": "rec.jsonl", "ovd": "ovd.json", "qa": "qa.jsonl"}


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    width: int = 224
    height: int = 224
    difficulty: int | None = None  # 1, 2 or 3; None draws it uniformly per sample
    families: tuple[str, ...] = QA_CATEGORIES  # QA families to draw from (uniformly), names of qa.FAMILIES
    photo: bool = False  # QA: photo-like variants (probability and strength per difficulty, see `photo`)
    stratified: bool = False  # QA: sample i takes family i % F and, unless fixed, difficulty (i // F) % 3 + 1
    split: str = "train"
    objects: tuple[int, int] | None = None  # rec/ovd: object count range (inclusive); None: the difficulty's
    object_scale: float = 1.0  # rec/ovd: object sides are shape_scene.SIZE_RANGES times this
    repainted: float = 0.0  # rec/ovd: the share of scenes drawn on a vocabulary background (`repaint`)

    def __post_init__(self):
        if not (isinstance(self.width, int) and isinstance(self.height, int)) or min(self.width, self.height) < 64:
            raise ValueError(f"image size {self.width}x{self.height}: width and height must be ints >= 64")
        if self.difficulty is not None and self.difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty={self.difficulty!r}: must be None or one of {DIFFICULTIES}")
        unknown = [c for c in self.families if c not in QA_CATEGORIES]
        if unknown or not self.families or isinstance(self.families, str):
            raise ValueError(f"families={self.families!r}: must be a non-empty tuple of names from {QA_CATEGORIES}")
        if self.objects is not None and not (len(self.objects) == 2 and 1 <= self.objects[0] <= self.objects[1]):
            raise ValueError(f"objects={self.objects!r}: must be None or (lo, hi) with 1 <= lo <= hi")
        if not 0.5 <= self.object_scale <= MAX_OBJECT_SCALE:
            raise ValueError(f"object_scale={self.object_scale!r}: must be in [0.5, {MAX_OBJECT_SCALE}]")
        if isinstance(self.repainted, bool) or not (isinstance(self.repainted, (int, float))
                                                     and 0.0 <= self.repainted <= 1.0):
            raise ValueError(f"repainted={self.repainted!r}: must be a share in [0, 1]")


@dataclasses.dataclass(frozen=True)
class Example:
    """One generated sample before it is written: the image plus the `Sample` fields and the scene JSON."""
    image: Image.Image
    task: str
    query: str
    boxes: list[list[int]]
    labels: list[str]
    categories: tuple[str, ...]
    answer: str | None
    meta: dict
    scene: dict


def example_rng(seed: int, task: str, index: int) -> np.random.Generator:
    """The generator that sample `index` of `task` is drawn from, and nothing else."""
    return np.random.default_rng([seed, _TASK_CODES[task], index])


def _difficulty(rng: np.random.Generator, cfg: EngineConfig) -> int:
    return cfg.difficulty if cfg.difficulty is not None else int(rng.integers(1, 4))


def scene_hints(scene) -> dict:
    """What a sample's meta records of its scene for image-specific warm-start descriptions
    (`prompts.target_description`): the objects' colours (RGB) and the background kind."""
    return {"object_colors": sorted({tuple(COLORS[o.color]) for o in scene.objects}),
            "background": scene.background["kind"]}


def render(rng: np.random.Generator, scene, cfg: EngineConfig) -> tuple[Image.Image, dict, dict]:
    """(image, meta hints, scene record) of a rec/ovd scene: with probability cfg.repainted on a vocabulary
    background (`repaint`: meta then names its texture and description, the record how to redraw it). rng is
    only drawn from when cfg.repainted > 0, so the engine's other data stay byte-identical."""
    hints, record = scene_hints(scene), {"scene": scene.to_json()}
    if cfg.repainted > 0 and rng.random() < cfg.repainted:
        image, record["repainted"] = repaint.repaint(rng, scene, cfg.object_scale)
        description = record["repainted"]["description"]
        hints.update(background=descriptions.parse(description).texture, background_description=description)
        return image, hints, record
    return render_scene(scene), hints, record


# Per REC difficulty: (object count range, #shapes, #colours, expression kinds, prefer multi-attribute).
_REC_LEVELS = {
    1: ((3, 5), 3, 3, ("attribute",), False),
    2: ((5, 7), 2, 2, ("attribute",), True),
    3: ((6, 9), 3, 2, ("relation", "extreme"), False),
}


def rec_example(rng: np.random.Generator, cfg: EngineConfig) -> Example:
    """A shape scene and a referring expression that clearly means exactly one of its objects."""
    difficulty = _difficulty(rng, cfg)
    (lo, hi), n_shapes, n_colors, kinds, prefer_long = _REC_LEVELS[difficulty]
    lo, hi = (cfg.objects[0], cfg.objects[1] + 1) if cfg.objects else (lo, hi)
    fewest = min(2, lo)  # a scene of one object still has a (trivially unique) attribute expression
    margin = max(4.0, 0.06 * min(cfg.width, cfg.height))  # pixels by which every comparison must be clear
    for _ in range(100):
        scene = sample_scene(rng, cfg.width, cfg.height, int(rng.integers(lo, hi)),
                             shapes=sub_vocabulary(rng, SHAPES, n_shapes),
                             colors=sub_vocabulary(rng, tuple(COLORS), n_colors), sizes=SIZES,
                             scale=cfg.object_scale)
        if len(scene.objects) < fewest:
            continue
        found = referring.sample_expression(rng, scene, kinds, margin, prefer_long)
        if found is not None:
            break
    else:
        raise RuntimeError(f"no unambiguous {kinds} expression in 100 scenes of {cfg.width}x{cfg.height}")
    expr, target = found
    image, hints, record = render(rng, scene, cfg)
    return Example(image=image, task="rec", query=referring.describe(expr),
                   boxes=[list(scene.objects[target].box)], labels=[referring.describe(expr)], categories=(),
                   answer=None, meta={"difficulty": difficulty, "expression_kind": referring.kind_of(expr), **hints},
                   scene={**record, "expression": expr, "target": target})


_OVD_LEVELS = {1: ((2, 5), 3), 2: ((4, 8), 4), 3: ((7, 11), 6)}  # object count range, #shapes


def ovd_example(rng: np.random.Generator, cfg: EngineConfig) -> Example:
    """A shape scene where every object is a box labelled with its shape; asks for present + absent shapes."""
    difficulty = _difficulty(rng, cfg)
    (lo, hi), n_shapes = _OVD_LEVELS[difficulty]
    lo, hi = (cfg.objects[0], cfg.objects[1] + 1) if cfg.objects else (lo, hi)
    sizes = SIZES if difficulty < 3 else ("small", "small", "large")
    scene = None
    while scene is None or not scene.objects:
        scene = sample_scene(rng, cfg.width, cfg.height, int(rng.integers(lo, hi)),
                             shapes=sub_vocabulary(rng, SHAPES, n_shapes), sizes=sizes, scale=cfg.object_scale)
    present = {o.shape for o in scene.objects}
    absent = [s for s in SHAPES if s not in present]
    negatives = set(rng.choice(absent, size=min(len(absent), int(rng.integers(0, 3))), replace=False).tolist())
    categories = tuple(s for s in SHAPES if s in present or s in negatives)
    image, hints, record = render(rng, scene, cfg)
    return Example(image=image, task="ovd", query="", boxes=[list(o.box) for o in scene.objects],
                   labels=[o.shape for o in scene.objects], categories=categories, answer=None,
                   meta={"difficulty": difficulty, **hints}, scene=record)


def qa_example(rng: np.random.Generator, cfg: EngineConfig, index: int | None = None,
               family: str | None = None) -> Example:
    """A question from one of `cfg.families` (or `family`) with an exact answer; photo-like if `cfg.photo`.

    The scene record holds the family's scene JSON (question, answer, the boxes as rendered) and, with
    `cfg.photo`, the variant applied (`photo`); the example's boxes are where the foreground ends up."""
    if family is None and cfg.stratified and index is not None:
        family = cfg.families[index % len(cfg.families)]
        difficulty = cfg.difficulty or DIFFICULTIES[(index // len(cfg.families)) % len(DIFFICULTIES)]
    else:
        difficulty = _difficulty(rng, cfg)
        family = family or cfg.families[int(rng.integers(len(cfg.families)))]
    scene = qa.sample_scene(rng, family, cfg.width, cfg.height, difficulty)
    image, boxes = qa.render_scene(scene), scene["boxes"]
    if cfg.photo:
        scene["photo"] = photo.sample_variant(rng, difficulty, cfg.width, cfg.height)
        image, boxes = photo.apply_variant(image, boxes, scene["photo"])
    return Example(image=image, task="qa", query=scene["question"], boxes=[list(b) for b in boxes],
                   labels=list(scene["labels"]), categories=(), answer=scene["answer"],
                   meta={"difficulty": difficulty, "qa_category": family}, scene=scene)


_MAKERS = {"rec": rec_example, "ovd": ovd_example, "qa": qa_example}


def make_example(task: str, seed: int, index: int, cfg: EngineConfig = EngineConfig()) -> Example:
    """Sample `index` of `task` for `seed` (a pure function of its arguments)."""
    if task not in _MAKERS:
        raise ValueError(f"engine task {task!r} is unknown; known: {ENGINE_TASKS}")
    rng = example_rng(seed, task, index)
    return qa_example(rng, cfg, index) if task == "qa" else _MAKERS[task](rng, cfg)


def sample_id(task: str, index: int) -> str:
    return f"{task}-{index:06d}"


def save_example(ex: Example, sid: str, image_dir: str, split: str = "train") -> tuple[Sample, dict]:
    """Writes the example's image to `image_dir/<sid>.png`; returns its `Sample` and its scene record."""
    path = os.path.join(image_dir, f"{sid}.png")
    ex.image.save(path, format="PNG")
    sample = Sample(sample_id=sid, task=ex.task, image_path=path, query=ex.query, categories=ex.categories,
                    boxes=np.asarray(ex.boxes, np.float32).reshape(-1, 4), labels=tuple(ex.labels), answer=ex.answer,
                    image_size=ex.image.size, meta={"dataset": "engine", "split": split, **ex.meta})
    return sample, {"id": sid, "task": ex.task, **ex.scene}


def generate(out_dir: str | os.PathLike, task: str, num: int, seed: int = 0, cfg: EngineConfig = EngineConfig(),
             progress: bool = True) -> list[Sample]:
    """Generates `num` samples of `task` into `out_dir` (images, annotation file, scenes file); returns them."""
    if task not in _MAKERS:
        raise ValueError(f"engine task {task!r} is unknown; known: {ENGINE_TASKS}")
    if num < 0:
        raise ValueError(f"num={num}: must be >= 0")
    out_dir = os.path.abspath(os.fspath(out_dir))
    image_dir = os.path.join(out_dir, "images")
    os.makedirs(image_dir, exist_ok=True)
    samples, scenes = [], []
    for index in tqdm(range(num), desc=f"engine {task}", unit="sample", disable=not progress):
        sid = sample_id(task, index)
        sample, scene = save_example(make_example(task, seed, index, cfg), sid, image_dir, cfg.split)
        samples.append(sample)
        scenes.append(scene)
    annotation = os.path.join(out_dir, ANNOTATION_FILES[task])
    if task == "rec":
        write_rec_jsonl(samples, annotation, out_dir)
    elif task == "ovd":
        write_coco_detection(samples, annotation, out_dir, category_names=SHAPES)
    else:
        write_qa_jsonl(samples, annotation, out_dir)
    records.write_jsonl(scenes, os.path.join(out_dir, f"{task}_scenes.jsonl"))
    return samples


def _parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size={text!r}: expected N or WxH") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"--size={text!r}: expected N or WxH")
    return parts[0], parts[1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m syngrpo_jax.data.engine", description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="output directory (created if missing)")
    parser.add_argument("--gallery", help="instead: write a page of examples per QA family to this PNG")
    parser.add_argument("--task", default="rec", help=f"comma-separated subset of {ENGINE_TASKS}")
    parser.add_argument("--num", type=int, default=200, help="samples per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_parse_size, default=None, help="image size: N (square) or WxH "
                        "(default 224; gallery tiles 200)")
    parser.add_argument("--difficulty", type=int, default=0, help="1, 2 or 3; 0 draws it per sample")
    parser.add_argument("--families", default=",".join(QA_CATEGORIES), help="comma-separated QA families")
    parser.add_argument("--photo", action="store_true", help="QA: photo-like variants")
    parser.add_argument("--stratified", action="store_true", help="QA: every (family, difficulty) equally often")
    parser.add_argument("--split", default="train", help="split name recorded in every sample")
    parser.add_argument("--objects", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                        help="rec/ovd object count range (default: the difficulty's)")
    parser.add_argument("--object_scale", type=float, default=1.0, help="rec/ovd object size factor")
    parser.add_argument("--repainted", type=float, default=0.0,
                        help="rec/ovd: share of scenes on a vocabulary background (0-1)")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    families = tuple(c for c in args.families.split(",") if c)
    if args.gallery:
        from syngrpo_jax.data.gallery import make_gallery  # the gallery builds on this module
        make_gallery(args.gallery, seed=args.seed, size=(args.size or (200, 200))[0], families=families)
        print(f"wrote the gallery of {len(families)} QA families to {args.gallery}")
        return
    if not args.out:
        parser.error("--out is required (or --gallery)")
    width, height = args.size or (224, 224)
    try:
        cfg = EngineConfig(width=width, height=height, difficulty=args.difficulty or None, families=families,
                           photo=args.photo, stratified=args.stratified, split=args.split,
                           objects=tuple(args.objects) if args.objects else None, object_scale=args.object_scale,
                           repainted=args.repainted)
    except ValueError as e:
        parser.error(str(e))
    for task in [t for t in args.task.split(",") if t]:
        samples = generate(args.out, task, args.num, args.seed, cfg, progress=not args.no_progress)
        print(f"wrote {len(samples)} {task} samples to {os.path.join(args.out, ANNOTATION_FILES[task])}")

if __name__ == "__main__":
    main()
