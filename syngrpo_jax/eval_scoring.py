r"""Scoring one evaluation split: a policy's responses against the ground truth, per task.

    metrics, records = score_split(task, samples, responses, model_hw=..., image_hw=..., response_format=fmt)

Accuracy reads `<answer>` whatever the other tags hold. Metrics per split (every task: num_samples; format_valid =
mean format reward, i.e. the fraction of responses that are exactly the format's tags in order and parse;
mean_response_tokens = mean generated tokens, the stop token included; truncated = fraction that hit the token
limit):
  rec       acc@0.5   fraction of samples with IoU(pred, gt) > 0.5, the predicted box (the answer's first) rescaled
                      from the model's pixels (after smart_resize) to the original image's; no box -> a miss
            miou      mean IoU over samples (no box -> 0)
  ovd, isr  map       mean over samples of the per-image COCO mAP@[.5:.95] (`rewards.ovd.mean_average_precision`:
                      pycocotools' stats[0] for that image alone, every prediction with score 1; both lists empty
                      -> 1; an unparsable answer -> 0). Per image, predicted labels that are not among that image's
                      gt labels are dropped, so hallucinated categories cost nothing here (the training reward's
                      min(1, N_gt/N_pred) factor is not applied).
            coco_map  dataset-level COCO mAP@[.5:.95]: pycocotools' COCOeval over all predictions of the split
                      (`coco_map`; categories: every gt label of the split; per category, the detections of all
                      images ranked together: every score is 1, so the rank is split order, each answer's boxes in
                      order; a prediction of a category that the split has but its image lacks is a false
                      positive). null when the split has no gt box. The number comparable to COCO-style results.
            gp, gr    greedy precision / recall at IoU >= 0.5 pooled over the split: total matched / total predicted,
                      total matched / total gt (per image, predictions in order each take the same-label unmatched
                      gt of highest IoU; `rewards.ovd.greedy_precision_recall`). No predictions at all: gp = 1 if
                      the split has no gt either, else 0 (likewise gr). Also num_predictions, num_gt, num_matched.
  qa        accuracy  exact match of the `\boxed{}` answer (reward.strict_qa applies), overall, and
                      accuracy_by_category / accuracy_by_difficulty from sample.meta["qa_category"] / ["difficulty"]
                      ("unknown" when a sample does not say), each {"accuracy", "num_samples"}
Labels compare after stripping and case folding, as the reward does.

Two mAP implementations exist in the project and no third: the reward's per-image one (vectorised, checked
against pycocotools in tests/rewards/test_ovd.py) and pycocotools itself for the dataset level.
"""
from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from syngrpo_jax.data.sample import Sample
from syngrpo_jax.rewards.accuracy import DETECTION_TASKS, check_task, parse_answer
from syngrpo_jax.rewards.format import format_reward
from syngrpo_jax.rewards.ovd import MAX_DETS, check_detection_inputs, greedy_precision_recall, mean_average_precisions
from syngrpo_jax.rewards.parsing import MAX_ABS_COORD, parse_qa_answer, rescale_boxes
from syngrpo_jax.rewards.qa import qa_reward
from syngrpo_jax.rewards.rec import ACC_IOU_THRESHOLD, box_iou
from syngrpo_jax.rollout.base import Response

UNKNOWN = "unknown"


def _label_key(label: str | None) -> str | None:
    return label.strip().casefold() if isinstance(label, str) else None


def _floats(boxes) -> list[list[float]]:
    return np.asarray(boxes, np.float64).reshape(-1, 4).tolist()


def _rescaled(boxes, model_hw, image_hw) -> np.ndarray:
    # Clipped so that an absurd coordinate stays a valid (hopeless) box, as the reward does.
    return np.clip(rescale_boxes(np.asarray(boxes, np.float64).reshape(-1, 4), model_hw, image_hw),
                   -MAX_ABS_COORD, MAX_ABS_COORD)


def _score_rec(samples, texts, model_hws, image_hws):
    rows, ious = [], []
    for sample, text, mhw, ihw in zip(samples, texts, model_hws, image_hws):
        pred = parse_answer("rec", text)
        gt = sample.boxes[0]
        if pred is None:
            iou, answer = 0.0, None
        else:
            box = _rescaled([pred.box], mhw, ihw)[0]
            iou = box_iou(box, gt)
            answer = {"box": box.tolist(), "label": pred.label}
        ious.append(iou)
        rows.append({"answer": answer, "scores": {"iou": iou, "correct": iou > ACC_IOU_THRESHOLD},
                     "gt": {"box": _floats(gt)[0], "label": sample.labels[0]}})
    ious = np.asarray(ious)
    return {"acc@0.5": float(np.mean(ious > ACC_IOU_THRESHOLD)), "miou": float(ious.mean())}, rows


def _score_detection(task, samples, texts, model_hws, image_hws):
    gts, gt_keys, preds, pred_keys, answers = [], [], [], [], []
    for sample, text, mhw, ihw in zip(samples, texts, model_hws, image_hws):
        gts.append(np.asarray(sample.boxes, np.float64))
        gt_keys.append([_label_key(lab) for lab in sample.labels])
        parsed = parse_answer(task, text)
        if parsed is None:
            preds.append(np.zeros((0, 4)))
            pred_keys.append([])
            answers.append(None)
            continue
        boxes = _rescaled([b.box for b in parsed], mhw, ihw)
        preds.append(boxes)
        pred_keys.append([_label_key(b.label) for b in parsed])
        answers.append([{"box": box.tolist(), "label": b.label} for box, b in zip(boxes, parsed)])
    parsed_at = [i for i, a in enumerate(answers) if a is not None]
    maps = np.zeros(len(samples))
    if parsed_at:
        maps[parsed_at] = mean_average_precisions(*([col[i] for i in parsed_at] for col in (gts, gt_keys, preds,
                                                                                              pred_keys)))
    rows, matched = [], []
    for i, sample in enumerate(samples):
        gp, gr = greedy_precision_recall(gts[i], gt_keys[i], preds[i], pred_keys[i])
        matched.append(round(gp * len(preds[i])))  # gp = matched / n_pred exactly, so this recovers the count
        rows.append({"answer": answers[i],
                     "scores": {"map": float(maps[i]), "gp": gp, "gr": gr, "matched": matched[-1]},
                     "gt": {"boxes": _floats(sample.boxes), "labels": list(sample.labels)}})
    n_pred, n_gt, n_matched = sum(len(p) for p in preds), sum(len(g) for g in gts), sum(matched)
    metrics = {
        "map": float(maps.mean()),
        "coco_map": coco_map(gts, gt_keys, preds, pred_keys),
        "gp": n_matched / n_pred if n_pred else float(n_gt == 0),
        "gr": n_matched / n_gt if n_gt else float(n_pred == 0),
        "num_predictions": n_pred, "num_gt": n_gt, "num_matched": n_matched,
    }
    return metrics, rows


def _grouped_accuracy(keys: Sequence[str], correct: np.ndarray) -> dict:
    groups: dict[str, list[bool]] = defaultdict(list)
    for key, ok in zip(keys, correct):
        groups[key].append(bool(ok))
    return {k: {"accuracy": float(np.mean(v)), "num_samples": len(v)} for k, v in sorted(groups.items())}


def _score_qa(samples, texts, strict_qa):
    correct = np.array([qa_reward(t, s.answer, strict=strict_qa) == 1.0 for s, t in zip(samples, texts)], bool)
    rows = [{"answer": parse_qa_answer(t, strict=strict_qa), "scores": {"correct": bool(ok)},
             "gt": {"answer": s.answer, "qa_category": s.meta.get("qa_category"),
                    "difficulty": s.meta.get("difficulty")}}
            for s, t, ok in zip(samples, texts, correct)]
    category = [str(s.meta.get("qa_category", UNKNOWN)) for s in samples]
    difficulty = [str(s.meta.get("difficulty", UNKNOWN)) for s in samples]
    return {"accuracy": float(correct.mean()), "accuracy_by_category": _grouped_accuracy(category, correct),
            "accuracy_by_difficulty": _grouped_accuracy(difficulty, correct)}, rows


def score_split(task: str, samples: Sequence[Sample], responses: Sequence[Response], *,
                model_hw: Sequence[tuple[int, int]], image_hw: Sequence[tuple[int, int]], response_format: str,
                strict_qa: bool = False) -> tuple[dict, list[dict]]:
    """(metrics, one record per sample) of one split's responses; see the module docstring for the metrics.

    model_hw / image_hw: per sample, (height, width) of the image the model saw and of the original.
    """
    check_task(task)
    n = len(samples)
    if not n or len(responses) != n or len(model_hw) != n or len(image_hw) != n:
        raise ValueError(f"score_split needs one response, model_hw and image_hw per sample, got {n} samples, "
                         f"{len(responses)} responses, {len(model_hw)} model_hw, {len(image_hw)} image_hw")
    texts = [r.text for r in responses]
    if task == "rec":
        metrics, rows = _score_rec(samples, texts, model_hw, image_hw)
    elif task in DETECTION_TASKS:
        metrics, rows = _score_detection(task, samples, texts, model_hw, image_hw)
    else:
        metrics, rows = _score_qa(samples, texts, strict_qa)
    valid = [format_reward(t, response_format, task=task, strict_qa=strict_qa) == 1.0 for t in texts]
    lengths = [len(r.token_ids) for r in responses]
    metrics = {"task": task, "num_samples": n, **metrics, "format_valid": float(np.mean(valid)),
               "mean_response_tokens": float(np.mean(lengths)),
               "truncated": float(np.mean([r.finish_reason == "length" for r in responses]))}
    records = [{"sample_id": s.sample_id, "task": task, "response": t, "num_tokens": k,
                "finish_reason": r.finish_reason, "format_valid": v, **row,
                "model_hw": list(mhw), "image_hw": list(ihw)}
               for s, t, k, r, v, row, mhw, ihw in zip(samples, texts, lengths, responses, valid, rows, model_hw,
                                                       image_hw)]
    return metrics, records


def coco_map(gt_boxes: Sequence[Any], gt_labels: Sequence[Sequence[str]], pred_boxes: Sequence[Any],
             pred_labels: Sequence[Sequence[str | None]]) -> float | None:
    """Dataset-level COCO mAP@[.5:.95] of a split: pycocotools' COCOeval(iouType='bbox').stats[0] over all images
    at once, image i having gt (gt_boxes[i], gt_labels[i]) and predictions (pred_boxes[i], pred_labels[i]) with
    score 1 in list order. Boxes are (x1, y1, x2, y2); COCO gets (x, y, w, h) and gt areas w * h. Categories: the
    distinct gt labels (predictions of other labels are not evaluated). None when no category has a gt that
    counts (COCOeval's -1).
    """
    from pycocotools.coco import COCO  # the reference implementation; a runtime dependency of evaluation
    from pycocotools.cocoeval import COCOeval

    items = [check_detection_inputs(*item, where=f"[{i}]")
             for i, item in enumerate(zip(gt_boxes, gt_labels, pred_boxes, pred_labels))]
    cat_id = {c: k + 1 for k, c in enumerate(sorted({lab for _, labels, _, _ in items for lab in labels}))}

    def xywh(box):
        x1, y1, x2, y2 = (float(v) for v in box)
        return [x1, y1, x2 - x1, y2 - y1]

    annotations = []
    for i, (gt, labels, _, _) in enumerate(items):
        for box, lab in zip(gt, labels):
            b = xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cat_id[lab],
                                "bbox": b, "area": b[2] * b[3], "iscrowd": 0})
    # One detection of a category that is not evaluated (id 0): loadRes cannot take an empty list, and a
    # detection outside params.catIds changes nothing.
    detections = [{"image_id": 1, "category_id": 0, "bbox": [0.0, 0.0, 1.0, 1.0], "score": 1.0}]
    detections += [{"image_id": i + 1, "category_id": cat_id[lab], "bbox": xywh(b), "score": 1.0}
                   for i, (_, _, pred, labels) in enumerate(items) for b, lab in zip(pred, labels) if lab in cat_id]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary
        gt = COCO()
        gt.dataset = {"images": [{"id": i + 1, "width": 1, "height": 1} for i in range(len(items))],
                      "annotations": annotations,
                      "categories": [{"id": k, "name": name} for name, k in cat_id.items()]}
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.params.maxDets = [1, 10, MAX_DETS]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    value = float(evaluation.stats[0])
    return None if value < 0 else value
