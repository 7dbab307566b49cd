"""Referring-expression (REC) annotation files: RefCOCO / RefCOCO+ / RefCOCOg / LISA-Grounding and engine output.

Two record layouts are accepted, one JSON object per line (`.jsonl`) or a JSON array of them (`.json`); image
names are relative to `image_root` (default: the annotation file's directory).

1. VLM-R1's `rec_jsons_processed` layout (the files the REC community trains Qwen2.5-VL on, e.g.
   `refcoco_train.json`, `refcocop_val.json`, `refcocog_test.json`, `lisa_test.json`):

       {"image": "COCO_train2014_000000580957.jpg",
        "problem": "Please provide the bounding box coordinate of the region this sentence describes: bowl behind
                    the others",   (one string)
        "solution": [103.93, 299.99, 238.15, 477.41],
        "normal_caption": "bowl behind the others"}

   `solution` is x1, y1, x2, y2 in pixels of the original image (also accepted: a string holding such a list,
   e.g. "<answer>[103, 299, 238, 477]</answer>"). The expression is `normal_caption` when present, else
   `problem` with VLM-R1's instruction prefix removed. These files carry no image size: it is read from the
   image header (`probe_image_size=True`) so boxes can be checked against the image.

2. A simple explicit layout (what `syngrpo_jax.data.engine` writes):

       {"id": "rec-000001", "image": "images/rec-000001.png", "expression": "the large red circle",
        "bbox": [12, 30, 60, 78], "width": 224, "height": 224,
        "split": "train", "label": "circle", "meta": {"difficulty": 2}}

   Required: image, expression, bbox (x1, y1, x2, y2 pixels). Optional: id, width + height (both or neither),
   split, label (default: the expression, as VLM-R1 labels REC answers), meta (an object merged into
   `Sample.meta`).

A record with `expression` is read as layout 2, otherwise as layout 1. Boxes that stick out of the image by at
most `clip_tolerance` pixels (float round-off in the public conversions) are clipped; anything else that is wrong
raises `RecordError` naming the file, line (or record), field and value.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable

import numpy as np

from syngrpo_jax.data import records
from syngrpo_jax.data.records import Location
from syngrpo_jax.data.sample import InvalidSampleError, Sample, probe_image_size

# VLM-R1's wording in front of the expression in `problem`; removed to recover the bare expression.
VLM_R1_REC_PREFIX = "Please provide the bounding box coordinate of the region this sentence describes:"
_BOX_IN_TEXT = re.compile(r"\[\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\]")


def read_rec(path: str | os.PathLike, image_root: str | os.PathLike | None = None, *, dataset: str | None = None,
             split: str | None = None, probe_image_size: bool = True, clip_tolerance: float = 1.0) -> list[Sample]:
    """All REC samples in a `.jsonl` / `.json` file (either layout above), validated, in file order.

    dataset: recorded in `meta["dataset"]` (default: the file name without suffix, e.g. "refcoco_train").
    split: `meta["split"]` for records that do not name one.
    probe_image_size: read (width, height) from the image header when a record has no width/height.
    """
    path = os.fspath(path)
    root = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(path))
    stem = os.path.basename(path).rsplit(".", 1)[0]
    dataset = dataset or stem
    sizes: dict[str, tuple[int, int]] | None = {} if probe_image_size else None  # probed once per image
    samples = []
    for loc, record in records.iter_records(path):
        samples.append(_read_record(loc, record, root, stem, dataset, split, sizes, clip_tolerance))
    return samples


def _read_record(loc: Location, record: dict, root: str, stem: str, dataset: str, split: str | None,
                 sizes: dict | None, clip_tolerance: float) -> Sample:
    image = records.get_str(loc, record, "image")
    image_path = records.resolve_image_path(root, image)
    if "expression" in record:
        layout = "simple"
        expression = records.get_str(loc, record, "expression").strip()
        box = records.get_box4(loc, record, "bbox")
        box_field = "bbox"
        label = records.get_str(loc, record, "label", default=expression)
    elif "problem" in record or "solution" in record or "normal_caption" in record:
        layout = "vlm_r1"
        expression = _vlm_r1_expression(loc, record)
        box = _vlm_r1_solution(loc, record)
        box_field = "solution"
        label = expression
    else:
        raise loc.error(None, sorted(record), "unknown REC layout: need 'expression' + 'bbox' (simple layout) or "
                                              "'problem'/'normal_caption' + 'solution' (VLM-R1 layout)")

    size = _read_size(loc, record, image_path, sizes)
    box = _check_box(loc, box_field, record[box_field], box, size, clip_tolerance)

    meta = {"dataset": dataset, "layout": layout, "source": f"{loc.path}:{loc.where}"}
    record_split = records.get_str(loc, record, "split", default=split)
    if record_split is not None:
        meta["split"] = record_split
    if layout == "vlm_r1" and "problem" in record:
        meta["problem"] = record["problem"]
    extra = records.get_field(loc, record, "meta", dict, default={})
    meta.update(extra)

    if "id" in record:
        sample_id = str(records.get_field(loc, record, "id", (str, int)))
    else:
        sample_id = f"{stem}:{loc.where.split(' (')[0].replace(' ', '')}"
    try:
        return Sample(sample_id=sample_id, task="rec", image_path=image_path, query=expression,
                      boxes=np.asarray([box], np.float32), labels=(label,), image_size=size, meta=meta)
    except InvalidSampleError as e:
        raise loc.wrap(e) from None


def _vlm_r1_expression(loc: Location, record: dict) -> str:
    caption = records.get_str(loc, record, "normal_caption", default=None)
    if caption is not None:
        return caption.strip()
    problem = records.get_str(loc, record, "problem").strip()
    if problem.lower().startswith(VLM_R1_REC_PREFIX.lower()):
        problem = problem[len(VLM_R1_REC_PREFIX):].strip()
        if problem.endswith("."):
            problem = problem[:-1].rstrip()
    if not problem:
        raise loc.error("problem", record["problem"], "no referring expression left after the instruction prefix")
    return problem


def _vlm_r1_solution(loc: Location, record: dict) -> list[float]:
    value = records.get_field(loc, record, "solution", (list, str))
    if isinstance(value, str):
        found = _BOX_IN_TEXT.findall(value)
        if len(found) != 1:
            raise loc.error("solution", value, "expected exactly one [x1, y1, x2, y2] list in the string")
        try:
            value = [float(v) for v in found[0]]
        except ValueError:
            raise loc.error("solution", value, "the box in the string is not 4 numbers") from None
    return records.as_box4(loc, "solution", value)


def _read_size(loc: Location, record: dict, image_path: str, sizes: dict | None) -> tuple[int, int] | None:
    """(width, height) from the record, else probed from the image header (cached in `sizes`), else None."""
    has_w, has_h = "width" in record, "height" in record
    if has_w != has_h:
        missing = "height" if has_w else "width"
        raise loc.error(missing, None, "width and height must be given together")
    if has_w:
        return records.get_positive_int(loc, record, "width"), records.get_positive_int(loc, record, "height")
    if sizes is None:
        return None
    if image_path in sizes:
        return sizes[image_path]
    try:
        sizes[image_path] = probe_image_size(image_path)
        return sizes[image_path]
    except OSError as e:
        raise loc.error("image", record["image"], f"cannot read the image size from {image_path!r} ({e})") from None


def _check_box(loc: Location, field: str, raw, box: list[float], size, tolerance: float) -> list[float]:
    """Checks an xyxy box against the image (errors quote the value as written in the file); clips round-off."""
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        raise loc.error(field, raw, "need x1 < x2 and y1 < y2 (xyxy with positive width and height)")
    if size is not None:
        w, h = size
        if x1 < -tolerance or y1 < -tolerance or x2 > w + tolerance or y2 > h + tolerance:
            raise loc.error(field, raw, f"box lies outside the image (width={w}, height={h})")
        x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
        if not (x1 < x2 and y1 < y2):
            raise loc.error(field, raw, f"box has no area inside the image (width={w}, height={h})")
    return [x1, y1, x2, y2]


def rec_record(sample: Sample, image_root: str) -> dict:
    """The simple-layout record for a REC sample (image stored relative to `image_root`)."""
    if sample.task != "rec":
        raise ValueError(f"sample {sample.sample_id!r} has task {sample.task!r}, not 'rec'")
    record = {"id": sample.sample_id,
              "image": os.path.relpath(sample.image_path, image_root),
              "expression": sample.query,
              "bbox": [records.json_number(v) for v in sample.boxes[0]]}
    if sample.image_size is not None:
        record["width"], record["height"] = sample.image_size
    if "split" in sample.meta:
        record["split"] = sample.meta["split"]
    if sample.labels[0] != sample.query:
        record["label"] = sample.labels[0]
    meta = {k: v for k, v in sample.meta.items() if k not in ("split", "layout", "source")}
    if meta:
        record["meta"] = meta
    return record


def write_rec_jsonl(samples: Iterable[Sample], path: str | os.PathLike, image_root: str | os.PathLike) -> None:
    """Writes REC samples in the simple layout, one JSON object per line, images relative to `image_root`."""
    root = os.path.abspath(os.fspath(image_root))
    records.write_jsonl((rec_record(sample, root) for sample in samples), path)
