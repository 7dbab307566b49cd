r"""Evaluation: greedy answers of a policy on the config's eval splits, scored per task, for one model or a whole run.

    python -m syngrpo_jax.evaluate --config=configs/tiny_cpu.py --checkpoint=workdirs/demo            # every step
    python -m syngrpo_jax.evaluate --config=configs/tiny_cpu.py --checkpoint=workdirs/demo/checkpoints/40
    python -m syngrpo_jax.evaluate --config=configs/rec.py --checkpoint=/models/Qwen2.5-VL-3B-Instruct \
        --workdir=/results/qwen3b_base --config.eval.batch_size=32

--checkpoint is one of
  a training workdir     (`checkpoints/` + `policy/`): every checkpoint step in it is evaluated, then a table;
  an orbax step dir      (`<workdir>/checkpoints/<step>`): that step; architecture and tokenizer come from
                         `<workdir>/policy/` (config.json + tokenizer files, written by the trainer);
  an HF model directory  (config.json + *.safetensors): e.g. the base model, or an exported checkpoint.
Outputs go under --workdir (default: `<workdir>/eval/` for the first two, `<hf_dir>/eval/` for the third):
  <root>/<step>/metrics.json      (HF dir: <root>/metrics.json)  per split, the metrics below
  <root>/<step>/predictions.jsonl one line per sample: split, sample_id, response, parsed answer, scores, gt
  <root>/table.md, table.json     one row per evaluated step found under <root>, columns `<split>/<metric>`
Engine splits are generated under `<root>/data/` (see eval_data).

Decoding is greedy (the JAX sampler, eval.batch_size prompts per call, eval.max_tokens new tokens), prompted in the
run's response format (reward.response_format). Accuracy reads `<answer>` whatever the other tags hold.

Metrics per split (every task: num_samples; format_valid = mean format reward, i.e. the fraction of responses that
are exactly the format's tags in order and parse; mean_response_tokens = mean generated tokens, the stop token
included; truncated = fraction that hit eval.max_tokens):
  rec       acc@0.5   fraction of samples with IoU(pred, gt) > 0.5, the predicted box (the answer's first) rescaled
                      from the model's pixels (after smart_resize) to the original image's; no box -> a miss
            miou      mean IoU over samples (no box -> 0)
  ovd, isr  map       mean over samples of the per-image COCO mAP@[.5:.95] (`rewards.ovd.mean_average_precision`:
                      pycocotools' stats[0] for that image alone, every prediction with score 1; both lists empty
                      -> 1; an unparsable answer -> 0). Per image, predicted labels that are not among that image's
                      gt labels are dropped, so hallucinated categories cost nothing here (the training reward's
                      min(1, N_gt/N_pred) factor is not applied).
            coco_map  dataset-level COCO mAP@[.5:.95]: all predictions of the split pooled into one COCOeval
                      (categories: every gt label of the split; per category, the detections of all images
                      ranked together: every score is 1, so the rank is split order, each answer's boxes in
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

Library use (the trainer: build one Evaluator, call it at eval_every and at the end; its sampler, and so its
compiled prefill/decode, are reused by every call):

    splits = eval_data.build_splits(config, os.path.join(workdir, "eval", "data"))
    evaluator = Evaluator(sampler, tokenizer, config, splits)  # the rollout sampler: it holds the live weights
    metrics = evaluator.evaluate(os.path.join(workdir, "eval", str(step)), step=step)
    write_table(os.path.join(workdir, "eval"))
    writer.write(step, {f"eval/{k}": v for k, v in scalar_metrics(metrics).items()})

or `Evaluator(model, ...)` and `evaluate(..., params=params)`, which pushes `params` into the evaluator's own
sampler first. Outputs are written by process 0 only; generation runs on every process.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import defaultdict
from typing import Any, Mapping, Sequence

import jax
import ml_collections
import numpy as np
from flax import nnx
from tqdm import tqdm

from syngrpo_jax import eval_data
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.data.sample import Sample
from syngrpo_jax.models.qwen2_5_vl import Qwen25VL
from syngrpo_jax.parallel.mesh import make_mesh
from syngrpo_jax.parallel.sharding import state_shardings
from syngrpo_jax.policy import architecture, dtype_of, load_policy
from syngrpo_jax.processing.tokenizer import Tokenizer
from syngrpo_jax.rewards.accuracy import DETECTION_TASKS, check_task, parse_answer
from syngrpo_jax.rewards.format import format_reward
from syngrpo_jax.rewards.ovd import (
    AREA_RANGE_ALL,
    IOU_THRESHOLDS,
    MAX_DETS,
    RECALL_THRESHOLDS,
    check_detection_inputs,
    greedy_precision_recall,
    mean_average_precisions,
)
from syngrpo_jax.rewards.parsing import MAX_ABS_COORD, parse_qa_answer, rescale_boxes
from syngrpo_jax.rewards.qa import qa_reward
from syngrpo_jax.rewards.rec import ACC_IOU_THRESHOLD, box_iou
from syngrpo_jax.rewards.response_format import response_tags
from syngrpo_jax.rollout.base import Response, RolloutEngine, SamplingParams
from syngrpo_jax.rollout.jax_sampler import JaxSampler
from syngrpo_jax.rollout.requests import prepare_request

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
TABLE_MD, TABLE_JSON = "table.md", "table.json"
UNKNOWN = "unknown"


# ------------------------------------------------------------------------------------------------------ scoring


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


# --------------------------------------------------------------------------------------- dataset-level COCO mAP


def _match_image(gt: np.ndarray, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """COCOeval.evaluateImg for one image and category (area 'all'): (dt matched [T, D], dt ignored [T, D],
    number of non-ignored gts). `dt` is in rank order, already cut to MAX_DETS."""
    lo, hi = AREA_RANGE_ALL
    num_t = len(IOU_THRESHOLDS)
    # xywh as the COCO annotations / results carry them; areas w * h, as loadRes and the converters compute them.
    gx, gy, gw, gh = gt[:, 0], gt[:, 1], gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    dx, dy, dw, dh = dt[:, 0], dt[:, 1], dt[:, 2] - dt[:, 0], dt[:, 3] - dt[:, 1]
    g_ignore = (gw * gh < lo) | (gw * gh > hi)
    order = np.argsort(g_ignore, kind="stable")  # COCOeval puts ignored gts last
    gx, gy, gw, gh, g_ignore = gx[order], gy[order], gw[order], gh[order], g_ignore[order]
    darea = dw * dh
    # maskApi bbIou: w = min(x + w) - max(x) (the same operations), no overlap -> 0.
    iw = np.minimum((dw + dx)[:, None], (gw + gx)[None]) - np.maximum(dx[:, None], gx[None])
    ih = np.minimum((dh + dy)[:, None], (gh + gy)[None]) - np.maximum(dy[:, None], gy[None])
    inter = iw * ih
    overlap = (iw > 0) & (ih > 0)
    union = np.where(overlap, (darea[:, None] + (gw * gh)[None]) - inter, 1.0)
    iou = np.where(overlap, inter / union, 0.0)
    thr = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]  # COCOeval: iou = min([t, 1 - 1e-10])
    num_g = len(gx)
    taken = np.zeros((num_t, num_g), bool)
    matched = np.zeros((num_t, len(dt)), bool)
    ignored = np.zeros((num_t, len(dt)), bool)
    rows = np.arange(num_t)
    for d in range(len(dt) if num_g else 0):
        # COCOeval's scan: the unmatched gt with the highest IoU >= t, the later one on ties, an ignored gt only
        # when no regular gt qualifies.
        cand = (iou[d][None] >= thr) & ~taken
        regular = cand & ~g_ignore[None]
        cand = np.where(regular.any(1, keepdims=True), regular, cand)
        hit = cand.any(1)
        pick = num_g - 1 - np.where(cand, iou[d][None], -1.0)[:, ::-1].argmax(1)
        taken[rows[hit], pick[hit]] = True
        matched[:, d] = hit
        ignored[:, d] = hit & g_ignore[pick]
    ignored |= ~matched & ((darea < lo) | (darea > hi))[None]
    return matched, ignored, int((~g_ignore).sum())


def coco_map(gt_boxes: Sequence[Any], gt_labels: Sequence[Sequence[str]], pred_boxes: Sequence[Any],
             pred_labels: Sequence[Sequence[str | None]]) -> float | None:
    """Dataset-level COCO mAP@[.5:.95] of a split: pycocotools' COCOeval(iouType='bbox').stats[0] for all images
    at once, image i having gt (gt_boxes[i], gt_labels[i]) and predictions (pred_boxes[i], pred_labels[i]) with
    score 1 in list order. Categories: the distinct gt labels (predictions of other labels are not evaluated).
    Gt areas are box areas; per image and category the first MAX_DETS predictions count; ties between images keep
    image order (COCOeval's stable sort over ascending image ids). None when no category has a gt (COCOeval: -1).
    """
    items = [check_detection_inputs(*item, where=f"[{i}]")
             for i, item in enumerate(zip(gt_boxes, gt_labels, pred_boxes, pred_labels))]
    cats = sorted({lab for _, labels, _, _ in items for lab in labels})
    num_t = len(IOU_THRESHOLDS)
    matched = {c: [] for c in cats}
    ignored = {c: [] for c in cats}
    positives = dict.fromkeys(cats, 0)
    for gt, g_labels, pred, p_labels in items:
        g_labels, p_labels = np.asarray(g_labels, object), np.asarray(p_labels, object)
        for c in set(g_labels.tolist()) | (set(p_labels.tolist()) & positives.keys()):
            m, ig, n_pos = _match_image(gt[g_labels == c], pred[p_labels == c][:MAX_DETS])
            matched[c].append(m)
            ignored[c].append(ig)
            positives[c] += n_pos
    total, scored = 0.0, 0
    for c in cats:
        if positives[c] == 0:
            continue
        scored += 1
        m, ig = np.concatenate(matched[c], axis=1), np.concatenate(ignored[c], axis=1)
        tp = np.cumsum(m & ~ig, axis=1, dtype=np.float64)
        fp = np.cumsum(~m & ~ig, axis=1, dtype=np.float64)
        recall = tp / positives[c]
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.flip(np.maximum.accumulate(np.flip(precision, 1), axis=1), 1)  # monotone from the right
        for t in range(num_t):
            at = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
            total += precision[t, at[at < recall.shape[1]]].sum()  # past the last reachable recall: 0
    return total / (scored * num_t * len(RECALL_THRESHOLDS)) if scored else None


# ---------------------------------------------------------------------------------------------------- evaluator


class Evaluator:
    """Greedy evaluation of one policy on fixed splits: build once, call `evaluate` per checkpoint.

    policy: a `Qwen25VL` (a JaxSampler is built on it and kept, so its compiled prefill/decode are reused by every
      call) or any `RolloutEngine` (e.g. the trainer's own sampler, already holding the live weights).
    splits: {name: samples}, e.g. `eval_data.build_splits(config, data_dir)`; each split holds one task.
    Reads config.eval (batch_size, max_tokens), reward.response_format, reward.strict_qa, data.min/max_pixels,
    rollout.prompt_multiple.
    """

    def __init__(self, policy, tokenizer, config, splits: Mapping[str, Sequence[Sample]], *, progress: bool = True):
        self.engine: RolloutEngine = (policy if isinstance(policy, RolloutEngine) else
                                      JaxSampler(policy, tokenizer, prompt_multiple=config.rollout.prompt_multiple))
        self.tokenizer = tokenizer
        self.fmt = config.reward.response_format
        response_tags(self.fmt)  # unknown format -> ValueError naming it
        self.strict_qa = bool(config.reward.strict_qa)
        self.min_pixels, self.max_pixels = config.data.min_pixels, config.data.max_pixels
        self.batch_size = config.eval.batch_size
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"eval.batch_size={self.batch_size!r}: must be an int >= 1")
        try:
            self.sampling = SamplingParams(n=1, temperature=0.0, max_tokens=config.eval.max_tokens,
                                           stop_token_ids=tuple(tokenizer.stop_ids))
        except ValueError as e:
            raise ValueError(f"eval.max_tokens={config.eval.max_tokens!r}: {e}") from None
        self.splits: dict[str, tuple[str, list[Sample]]] = {}
        for name, samples in splits.items():
            tasks = sorted({s.task for s in samples})
            if len(tasks) != 1:
                raise ValueError(f"eval split {name!r} must hold samples of one task, got tasks {tasks} "
                                 f"({len(samples)} samples)")
            self.splits[name] = (tasks[0], list(samples))
        self.progress = progress

    def _generate(self, name: str, samples: list[Sample]):
        """(prepared requests, responses) in sample order. Images are processed one batch at a time (never the
        whole split in memory); a short last batch is padded with copies of its last request so that every call
        has the same batch size and the sampler compiles nothing new for it."""
        prepared, responses = [], []
        with tqdm(total=len(samples), desc=f"eval {name}", unit="sample", disable=not self.progress) as bar:
            for start in range(0, len(samples), self.batch_size):
                batch = [prepare_request(s, self.tokenizer, self.fmt, min_pixels=self.min_pixels,
                                         max_pixels=self.max_pixels) for s in samples[start:start + self.batch_size]]
                requests = [p.request for p in batch]
                requests += [requests[-1]] * (self.batch_size - len(requests))
                out = self.engine.generate(requests, self.sampling)
                prepared += batch
                responses += [group[0] for group in out[:len(batch)]]
                bar.update(len(batch))
        return prepared, responses

    def evaluate(self, out_dir: str | None, *, params=None, step: int | None = None, source: str = "") -> dict:
        """Metrics of every split ({"step", "source", "response_format", "splits": {name: metrics}}), written with
        the predictions to `out_dir` (None: nothing written). params: new weights for the sampler (an nnx.State or
        its pure dict, e.g. the trainer's live parameters); None keeps the ones it has."""
        if params is not None:
            self.engine.update_weights(params, step or 0)
        results: dict[str, dict] = {}
        records: list[dict] = []
        for name, (task, samples) in self.splits.items():
            prepared, responses = self._generate(name, samples)
            metrics, rows = score_split(task, samples, responses, model_hw=[p.model_hw for p in prepared],
                                        image_hw=[p.image_hw for p in prepared], response_format=self.fmt,
                                        strict_qa=self.strict_qa)
            results[name] = metrics
            records += [{"split": name, **row} for row in rows]
            log.info("eval %s (step %s): %s", name, step, json.dumps(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
                 if not isinstance(v, dict)}))
        out = {"step": step, "source": source, "response_format": self.fmt, "splits": results}
        if out_dir is not None and jax.process_index() == 0:
            os.makedirs(out_dir, exist_ok=True)
            atomic_write(os.path.join(out_dir, METRICS_FILE), json.dumps(out, indent=2) + "\n")
            atomic_write(os.path.join(out_dir, PREDICTIONS_FILE), "".join(json.dumps(r) + "\n" for r in records))
        return out


def evaluate_model(policy, tokenizer, config, splits: Mapping[str, Sequence[Sample]], out_dir: str | None, *,
                   params=None, step: int | None = None, progress: bool = True) -> dict:
    """One-off `Evaluator(policy, tokenizer, config, splits).evaluate(out_dir, params=params, step=step)`. Calling
    it again rebuilds the sampler; a caller that evaluates repeatedly (the trainer) keeps one Evaluator."""
    return Evaluator(policy, tokenizer, config, splits, progress=progress).evaluate(out_dir, params=params, step=step)


# ------------------------------------------------------------------------------------------------------ outputs


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """{"<split>/<metric>": value} of the numeric top-level metrics of each split (the table's columns; what a
    trainer logs). Per-category breakdowns stay in metrics.json."""
    return {f"{split}/{k}": v for split, m in metrics["splits"].items() for k, v in m.items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}


def write_table(eval_root: str) -> list[dict]:
    """Rebuild `<eval_root>/table.md` and `table.json` from every `<eval_root>/<step>/metrics.json`; returns the
    rows ({"step": s, "<split>/<metric>": v, ...}, by step)."""
    rows = []
    for entry in os.listdir(eval_root) if os.path.isdir(eval_root) else ():
        path = os.path.join(eval_root, entry, METRICS_FILE)
        if entry.isdigit() and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                rows.append({"step": int(entry), **scalar_metrics(json.load(f))})
    rows.sort(key=lambda r: r["step"])
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if jax.process_index() == 0 and rows:
        atomic_write(os.path.join(eval_root, TABLE_JSON), json.dumps({"columns": columns, "rows": rows}, indent=2))

        def cell(v):
            return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

        lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
        lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
        atomic_write(os.path.join(eval_root, TABLE_MD), "\n".join(lines) + "\n")
    return rows


# -------------------------------------------------------------------------------------------------- checkpoints


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """What --checkpoint names. kind: "hf" | "step" | "workdir"."""

    kind: str
    path: str  # --checkpoint, absolute
    model_dir: str  # hf: the model dir; step / workdir: <workdir>/policy (architecture + tokenizer, no weights)
    checkpoints_dir: str | None  # step / workdir: <workdir>/checkpoints
    steps: tuple[int, ...]  # step / workdir: the steps to evaluate
    eval_root: str  # the default output root: <hf_dir>/eval or <workdir>/eval


_KINDS_HELP = ("a training workdir (checkpoints/ and policy/ inside), an orbax step directory "
               "(<workdir>/checkpoints/<step>), or an HF model directory (config.json and *.safetensors)")


def _has_weights(path: str) -> bool:
    return any(name.endswith(".safetensors") for name in os.listdir(path))


def _policy_dir(workdir: str, checkpoint: str) -> str:
    policy = os.path.join(workdir, "policy")
    if not os.path.isfile(os.path.join(policy, "config.json")):
        raise FileNotFoundError(f"--checkpoint={checkpoint!r}: {policy!r} has no config.json; the run's "
                                f"architecture and tokenizer are read from there (the trainer writes them)")
    return policy


def resolve_checkpoint(path: str) -> CheckpointSource:
    """Which of the three kinds `path` is (see the module docstring); ValueError naming it when none."""
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(full):
        raise FileNotFoundError(f"--checkpoint={path!r}: no such directory; give {_KINDS_HELP}")
    if os.path.isfile(os.path.join(full, "config.json")):
        if not _has_weights(full):
            raise ValueError(f"--checkpoint={path!r} has config.json but no *.safetensors weights (a run's policy/ "
                             f"directory holds only the architecture: give the run's workdir or a step directory)")
        return CheckpointSource("hf", full, full, None, (), os.path.join(full, "eval"))
    if os.path.isdir(os.path.join(full, "checkpoints")):
        directory = os.path.join(full, "checkpoints")
        steps = tuple(Checkpointer(directory, max_to_keep=None, async_save=False).all_steps())
        if not steps:
            raise ValueError(f"--checkpoint={path!r} is a workdir without any finished checkpoint in {directory!r}")
        return CheckpointSource("workdir", full, _policy_dir(full, path), directory, steps,
                                os.path.join(full, "eval"))
    name, parent = os.path.basename(full), os.path.dirname(full)
    if name.isdigit() and os.path.isdir(os.path.join(full, "params")):
        if int(name) not in Checkpointer(parent, max_to_keep=None, async_save=False).all_steps():
            raise ValueError(f"--checkpoint={path!r} is not a finished checkpoint of {parent!r} (a save that "
                             f"did not complete?)")
        workdir = os.path.dirname(parent)
        return CheckpointSource("step", full, _policy_dir(workdir, path), parent, (int(name),),
                                os.path.join(workdir, "eval"))
    raise ValueError(f"--checkpoint={path!r} is none of the kinds evaluation reads: {_KINDS_HELP}")


class _OrbaxParams:
    """Restores the parameters of a run's checkpoints into the layout (dtype, shardings) the config asks for."""

    def __init__(self, source: CheckpointSource, model_cfg, mesh):
        arch = architecture(source.model_dir)
        abstract = nnx.eval_shape(lambda: Qwen25VL(
            arch, rngs=nnx.Rngs(0), param_dtype=dtype_of(model_cfg.dtype),
            dtype=dtype_of(model_cfg.get("compute_dtype")), attention_impl=model_cfg.attention_impl, mesh=mesh))
        self.graphdef, state = nnx.split(abstract)
        shapes = nnx.to_pure_dict(state)
        if mesh is None:
            device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            shardings = jax.tree.map(lambda _: device, shapes)
        else:
            shardings = nnx.to_pure_dict(state_shardings(state, mesh))
        self.like = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)
        self.checkpointer = Checkpointer(source.checkpoints_dir, max_to_keep=None, async_save=False)

    def restore(self, step: int):
        return self.checkpointer.restore_params(step, params_like=self.like)

    def model(self, params):
        return nnx.merge(self.graphdef, params)


def evaluate_checkpoint(config, checkpoint: str, out_root: str | None = None, *, progress: bool = True) -> dict:
    """What the command line does: evaluate `checkpoint` (any of the three kinds) on config.eval.splits.

    Returns {step: metrics} (the HF kind: {None: metrics}). Writes under `out_root` (default: the source's
    eval root): `<step>/metrics.json` + predictions and the table (the HF kind: metrics and predictions only).
    """
    source = resolve_checkpoint(checkpoint)
    root = os.path.abspath(out_root or source.eval_root)
    splits = eval_data.build_splits(config, os.path.join(root, "data"))
    mesh = make_mesh(**config.mesh) if jax.device_count() > 1 else None
    if source.kind == "hf":
        model_cfg = ml_collections.ConfigDict(config.model.to_dict())
        model_cfg.path = source.model_dir
        policy = load_policy(model_cfg, root, seed=config.seed, mesh=mesh)
        evaluator = Evaluator(policy.model, policy.tokenizer, config, splits, progress=progress)
        return {None: evaluator.evaluate(root, source=source.path)}
    orbax = _OrbaxParams(source, config.model, mesh)
    tokenizer = Tokenizer.from_dir(config.model.get("tokenizer_path") or source.model_dir)
    evaluator, results = None, {}
    for step in source.steps:
        log.info("evaluating step %d of %s", step, source.checkpoints_dir)
        params = orbax.restore(step)
        if evaluator is None:
            evaluator = Evaluator(orbax.model(params), tokenizer, config, splits, progress=progress)
        results[step] = evaluator.evaluate(os.path.join(root, str(step)), params=params, step=step,
                                           source=os.path.join(source.checkpoints_dir, str(step)))
    orbax.checkpointer.close()
    write_table(root)
    return results


# ------------------------------------------------------------------------------------------------- command line


def _cli() -> None:
    # Flags are defined only when this module runs as a program: the trainer imports it, and has its own --config
    # and --workdir.
    from absl import app, flags
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "Run config file (configs/*.py[:arg]).",
                                             lock_config=True)
    checkpoint = flags.DEFINE_string("checkpoint", None, f"What to evaluate: {_KINDS_HELP}.", required=True)
    workdir = flags.DEFINE_string("workdir", None, "Output root (default: <workdir>/eval or <hf_dir>/eval).")

    def main(argv) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if config.value is None:
            raise app.UsageError("--config is required (configs/<file>.py[:arg])")
        for step, metrics in evaluate_checkpoint(config.value, checkpoint.value, workdir.value).items():
            print(json.dumps({"step": step, **scalar_metrics(metrics)}))

    app.run(main)


if __name__ == "__main__":
    _cli()
