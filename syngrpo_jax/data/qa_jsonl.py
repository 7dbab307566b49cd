"""Visual QA annotation files with verifiable answers (e.g. the data engine's QA families).

One JSON object per line (`.jsonl`) or a JSON array (`.json`), images relative to `image_root` (default: the
file's directory):

    {"id": "qa-000003", "image": "images/qa-000003.png", "question": "What is the value of bar C?",
     "answer": "35", "width": 224, "height": 224, "split": "train",
     "category": "bar_chart", "difficulty": 2,
     "boxes": [[20, 40, 50, 200]], "labels": ["bar C"], "meta": {...}}

Required: image, question, answer (a string: exactly what belongs inside `\\boxed{}`; numbers are written as
strings so "35" and "35.0" are never confused). Optional: id, width + height (both or neither), split, category
(the engine writes family names of data.qa.FAMILIES, e.g. "cubes"), difficulty (a positive int), boxes (x1, y1,
x2, y2 pixels of foreground elements the background rewriter must keep) with one label each, meta (merged into
`Sample.meta`).
"""
from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from syngrpo_jax.data import records
from syngrpo_jax.data.records import Location
from syngrpo_jax.data.sample import InvalidSampleError, Sample


def read_qa(path: str | os.PathLike, image_root: str | os.PathLike | None = None, *, dataset: str | None = None,
            split: str | None = None) -> list[Sample]:
    """All QA samples in a `.jsonl` / `.json` file, validated, in file order."""
    path = os.fspath(path)
    root = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(path))
    stem = os.path.basename(path).rsplit(".", 1)[0]
    dataset = dataset or stem
    return [_read_record(loc, record, root, stem, dataset, split) for loc, record in records.iter_records(path)]


def _read_record(loc: Location, record: dict, root: str, stem: str, dataset: str, split: str | None) -> Sample:
    image = records.get_str(loc, record, "image")
    question = records.get_str(loc, record, "question").strip()
    answer = records.get_field(loc, record, "answer", str)
    if not answer.strip() or answer != answer.strip():
        raise loc.error("answer", answer, "must be a non-empty string without surrounding whitespace")
    has_w, has_h = "width" in record, "height" in record
    if has_w != has_h:
        raise loc.error("height" if has_w else "width", None, "width and height must be given together")
    size = None
    if has_w:
        size = (records.get_positive_int(loc, record, "width"), records.get_positive_int(loc, record, "height"))

    raw_boxes = records.get_field(loc, record, "boxes", list, default=[])
    boxes = [records.as_box4(loc, f"boxes[{i}]", b) for i, b in enumerate(raw_boxes)]
    labels = records.get_field(loc, record, "labels", list, default=[])
    if len(labels) != len(boxes):
        raise loc.error("labels", labels, f"expected one label per box ({len(boxes)} boxes)")
    for label in labels:
        if not isinstance(label, str):
            raise loc.error("labels", labels, f"every label must be a string, got {label!r}")

    meta = {"dataset": dataset, "source": f"{loc.path}:{loc.where}"}
    record_split = records.get_str(loc, record, "split", default=split)
    if record_split is not None:
        meta["split"] = record_split
    category = records.get_str(loc, record, "category", default=None)
    if category is not None:
        meta["qa_category"] = category
    difficulty = records.get_positive_int(loc, record, "difficulty", default=None)
    if difficulty is not None:
        meta["difficulty"] = difficulty
    meta.update(records.get_field(loc, record, "meta", dict, default={}))

    if "id" in record:
        sample_id = str(records.get_field(loc, record, "id", (str, int)))
    else:
        sample_id = f"{stem}:{loc.where.split(' (')[0].replace(' ', '')}"
    try:
        return Sample(sample_id=sample_id, task="qa", image_path=records.resolve_image_path(root, image),
                      query=question, boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=tuple(labels),
                      answer=answer, image_size=size, meta=meta)
    except InvalidSampleError as e:
        raise loc.wrap(e) from None


def qa_record(sample: Sample, image_root: str) -> dict:
    """The record for a QA sample (image stored relative to `image_root`)."""
    if sample.task != "qa":
        raise ValueError(f"sample {sample.sample_id!r} has task {sample.task!r}, not 'qa'")
    record = {"id": sample.sample_id, "image": os.path.relpath(sample.image_path, image_root),
              "question": sample.query, "answer": sample.answer}
    if sample.image_size is not None:
        record["width"], record["height"] = sample.image_size
    for key, field in (("split", "split"), ("qa_category", "category"), ("difficulty", "difficulty")):
        if key in sample.meta:
            record[field] = sample.meta[key]
    if len(sample.boxes):
        record["boxes"] = [[records.json_number(v) for v in box] for box in sample.boxes]
        record["labels"] = list(sample.labels)
    meta = {k: v for k, v in sample.meta.items()
            if k not in ("split", "qa_category", "difficulty", "source")}
    if meta:
        record["meta"] = meta
    return record


def write_qa_jsonl(samples: Iterable[Sample], path: str | os.PathLike, image_root: str | os.PathLike) -> None:
    """Writes QA samples one JSON object per line, images relative to `image_root`."""
    root = os.path.abspath(os.fspath(image_root))
    records.write_jsonl((qa_record(sample, root) for sample in samples), path)
