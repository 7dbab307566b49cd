"""Open-vocabulary detection (OVD, and ISR perception): a predicted (box, label) list against the ground truth.

R_acc = mAP * s, mAP = COCO mAP@[.5:.95] of the response against its image's ground truth, s = min(1, N_gt/N_pred)
(s = 1 when N_pred = 0): COCO AP does not punish extra low-confidence boxes, and a response has no confidences,
so s stops "predict everything everywhere" from paying. GP / GR (greedy precision / recall at IoU 0.5) are
logged metrics.

`mean_average_precision` reproduces pycocotools' COCOeval `stats[0]` (iouType 'bbox') for one image (to ~1e-16:
only the order of the final sum differs). The computation is vectorised over responses, IoU thresholds and
detections; the only Python loop is the greedy matching's walk over detection ranks, which is sequential by
definition. `mean_average_precisions` / `ovd_rewards` take a whole batch of responses at once (one image each),
which is where that pays off most (`benchmarks/rewards.py`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from syngrpo_jax.rewards.parsing import MAX_ABS_COORD
from syngrpo_jax.rewards.rec import as_boxes, pairwise_iou

# COCOeval's Params.setDetParams, built the same way so that the thresholds are the same floats.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGE_ALL = (0.0**2, 1e5**2)
MAX_DETS = 100
GREEDY_IOU_THRESHOLD = 0.5
_EPS = np.spacing(1)  # COCOeval: pr = tp / (fp + tp + np.spacing(1))
_MATCH_THRESHOLDS = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)  # COCOeval: iou = min([t, 1 - 1e-10])
# Responses are evaluated in chunks of similar size (sorted by size, then cut where B * D * G would pass this),
# so that padding to a chunk's largest response stays cheap and memory stays bounded whatever the batch holds.
_CHUNK_ELEMENTS = 1 << 15


def _check_labels(labels: Any, n: int, name: str, allow_none: bool) -> list:
    labels = [] if labels is None else list(labels)
    if len(labels) != n:
        raise ValueError(f"{name} must have one label per box ({n}), got {len(labels)}: {labels!r}")
    for lab in labels:
        if not (isinstance(lab, str) or (allow_none and lab is None)):
            raise ValueError(f"{name} must be strings{' or None' if allow_none else ''}, got {lab!r}")
    return labels


def check_detection_inputs(gt_boxes, gt_labels, pred_boxes, pred_labels, where: str = ""):
    """(gt [N, 4] float64, gt_labels list, pred [M, 4] float64, pred_labels list), validated: ValueError naming
    the argument for boxes not [N, 4] or not finite (|x| <= MAX_ABS_COORD), or labels not one string per box
    (None allowed among predicted labels)."""
    gt = as_boxes(gt_boxes, f"gt_boxes{where}", single=False, max_abs=MAX_ABS_COORD)
    pred = as_boxes(pred_boxes, f"pred_boxes{where}", single=False, max_abs=MAX_ABS_COORD)
    return (
        gt,
        _check_labels(gt_labels, gt.shape[0], f"gt_labels{where}", allow_none=False),
        pred,
        _check_labels(pred_labels, pred.shape[0], f"pred_labels{where}", allow_none=True),
    )


def _prepare_batch(gt_boxes, gt_labels, pred_boxes, pred_labels) -> list[tuple]:
    columns = {"gt_boxes": gt_boxes, "gt_labels": gt_labels, "pred_boxes": pred_boxes, "pred_labels": pred_labels}
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"gt_boxes, gt_labels, pred_boxes, pred_labels must be batches of one length, got {lengths}")
    return [check_detection_inputs(*item, where=f"[{i}]") for i, item in enumerate(zip(*columns.values()))]


def mean_average_precision(
    gt_boxes: Any, gt_labels: Sequence[str], pred_boxes: Any, pred_labels: Sequence[str | None]
) -> float:
    """COCO mAP@[.5:.95] of one image's predictions, equal to pycocotools COCOeval(iouType='bbox').stats[0].

    Inputs: boxes [N, 4] (x1, y1, x2, y2) in pixels, one label string per box. What COCOeval would be given:
    one image; categories = the distinct ground-truth labels; each gt an annotation with bbox = (x1, y1, x2 - x1,
    y2 - y1), area = w * h, iscrowd 0; each prediction a result with that bbox and score 1.0, so ties keep input
    order (COCOeval sorts by -score with a stable mergesort). Predictions whose label is not a gt label are
    dropped (COCOeval only evaluates the gt's categories). Then, as COCOeval computes it:
      - IoU as maskApi's bbIou on xywh (no +1): boxes with w <= 0 or h <= 0 overlap nothing;
      - area range 'all' = [0, 1e10]: a gt with w*h outside it is "ignore" (matchable, never counted), an
        unmatched prediction with w*h outside it is ignored (neither TP nor FP);
      - per category and IoU threshold t in .5:.05:.95, the first 100 predictions (in order) are matched
        greedily, each to the unmatched gt with the highest IoU >= t (non-ignored gts first; equal IoUs -> the
        later gt);
      - per category and t, precision is made monotone (running max from the right) and read at the 101 recall
        thresholds 0:.01:1 (searchsorted 'left'; past the last reachable recall -> 0);
      - stats[0] = the mean over (t, recall, category) of categories with a non-ignored gt.
    A perfect answer thus scores 1 / (1 + 2**-52) = 0.9999999999999998, as in COCOeval.
    Ours, where COCOeval has no answer: both lists empty -> 1.0; exactly one empty -> 0.0; no category with a
    non-ignored gt (COCOeval's -1, e.g. every gt box inverted or larger than 1e5 x 1e5) -> 0.0.
    Raises ValueError for boxes not [N, 4] or not finite, or labels not one string per box.
    """
    return float(_coco_maps([check_detection_inputs(gt_boxes, gt_labels, pred_boxes, pred_labels)])[0])


def mean_average_precisions(
    gt_boxes: Sequence[Any],
    gt_labels: Sequence[Sequence[str]],
    pred_boxes: Sequence[Any],
    pred_labels: Sequence[Sequence[str | None]],
) -> np.ndarray:
    """`mean_average_precision` of each of B responses (one image each) -> [B]; arguments are length-B lists."""
    return _coco_maps(_prepare_batch(gt_boxes, gt_labels, pred_boxes, pred_labels))


def _count_scale(n_gt: int, n_pred: int) -> float:
    return 1.0 if n_pred == 0 else min(1.0, n_gt / n_pred)


def ovd_reward(
    gt_boxes: Any, gt_labels: Sequence[str], pred_boxes: Any, pred_labels: Sequence[str | None]
) -> float:
    """R_acc for OVD / ISR = mAP * min(1, N_gt / N_pred), in [0, 1]; N_pred = 0 -> the factor is 1.

    N_pred counts every predicted box, including those whose label is not a gt label (they are dropped from
    the mAP but still spend the budget of N_gt boxes).
    """
    item = check_detection_inputs(gt_boxes, gt_labels, pred_boxes, pred_labels)
    return float(_coco_maps([item])[0]) * _count_scale(item[0].shape[0], item[2].shape[0])


def ovd_rewards(
    gt_boxes: Sequence[Any],
    gt_labels: Sequence[Sequence[str]],
    pred_boxes: Sequence[Any],
    pred_labels: Sequence[Sequence[str | None]],
) -> np.ndarray:
    """`ovd_reward` of each of B responses -> [B] (one vectorised evaluation; arguments are length-B lists)."""
    items = _prepare_batch(gt_boxes, gt_labels, pred_boxes, pred_labels)
    scale = np.array([_count_scale(it[0].shape[0], it[2].shape[0]) for it in items], np.float64)
    return _coco_maps(items) * scale


def _coco_maps(items: list[tuple]) -> np.ndarray:
    """stats[0] (with our empty-case rules) of each validated (gt, gt_labels, pred, pred_labels) -> [B]."""
    out = np.zeros(len(items))
    work = []
    for n, (gt, gt_labels, pred, pred_labels) in enumerate(items):
        if gt.shape[0] == 0 or pred.shape[0] == 0:
            out[n] = 1.0 if gt.shape[0] == pred.shape[0] else 0.0
            continue
        cats = {lab: k for k, lab in enumerate(sorted(set(gt_labels)))}
        # Predictions of gt categories, the first MAX_DETS of each (COCOeval's maxDets), grouped by category
        # with input order kept inside a group. Groups never interact (IoU across categories is 0), so the
        # grouped order is each category's own order, which is all COCOeval looks at.
        groups: list[list[int]] = [[] for _ in cats]
        for i, lab in enumerate(pred_labels):
            k = cats.get(lab, -1)
            if k >= 0 and len(groups[k]) < MAX_DETS:
                groups[k].append(i)
        order = [i for g in groups for i in g]
        if order:
            pcat = [k for k, g in enumerate(groups) for _ in g]
            # gts reversed: see the matching in _coco_maps_padded.
            work.append((n, gt[::-1], [cats[lab] for lab in reversed(gt_labels)], pred[order], pcat))
    for chunk in _chunks(sorted(work, key=lambda w: (w[3].shape[0], w[1].shape[0]))):
        out[[w[0] for w in chunk]] = _coco_maps_padded(chunk)
    return out


def _chunks(work: list[tuple]):
    """Consecutive runs of `work` whose padded size B * max D * max G stays within _CHUNK_ELEMENTS (or one item)."""
    chunk: list[tuple] = []
    max_d = max_g = 0
    for w in work:
        d, g = max(max_d, w[3].shape[0]), max(max_g, w[1].shape[0])
        if chunk and (len(chunk) + 1) * d * g > _CHUNK_ELEMENTS:
            yield chunk
            chunk, d, g = [], w[3].shape[0], w[1].shape[0]
        chunk.append(w)
        max_d, max_g = d, g
    if chunk:
        yield chunk


def _pad(arrays: list, counts: np.ndarray, fill: float, dtype) -> np.ndarray:
    """Stack variable-length rows (each [n_i, ...]) into [B, max n_i, ...], padding with `fill`."""
    if len(arrays) == 1:
        return np.asarray(arrays[0], dtype)[None]
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    flat = np.concatenate([np.asarray(a, dtype) for a in arrays])
    out = np.full((len(counts), int(counts.max()), *flat.shape[1:]), fill, dtype)
    out[rows, cols] = flat
    return out


def _coco_maps_padded(chunk: list[tuple]) -> np.ndarray:
    """COCOeval stats[0] for responses with >= 1 gt and >= 1 kept prediction, padded to [B, D, G]."""
    g_counts = np.array([w[1].shape[0] for w in chunk])
    d_counts = np.array([w[3].shape[0] for w in chunk])
    gt = _pad([w[1] for w in chunk], g_counts, 0.0, np.float64)  # [B, G, 4], each response's gts reversed
    gcat = _pad([w[2] for w in chunk], g_counts, -1, np.int64)  # [B, G]; padding -1
    pred = _pad([w[3] for w in chunk], d_counts, 0.0, np.float64)  # [B, D, 4], grouped by category
    pcat = _pad([w[4] for w in chunk], d_counts, -2, np.int64)  # [B, D]; padding -2
    g_valid, d_valid = gcat >= 0, pcat >= 0

    # xywh exactly as the COCO annotations / results carry them; areas as COCO converters and loadRes compute.
    gx, gy, gw, gh = gt[..., 0], gt[..., 1], gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
    dx, dy, dw, dh = pred[..., 0], pred[..., 1], pred[..., 2] - pred[..., 0], pred[..., 3] - pred[..., 1]
    garea, darea = gw * gh, dw * dh
    lo, hi = AREA_RANGE_ALL
    g_ignore = g_valid & ((garea < lo) | (garea > hi))  # [B, G]
    d_outside = (darea < lo) | (darea > hi)  # [B, D]

    # maskApi bbIou, the same operations in the same order: iw = min(x + w) - max(x), u = da + ga - i. Pairs
    # that do not overlap, or are of different categories (padding included), stay 0: below every threshold.
    # (So does an intersection that underflows to 0, where maskApi would compute 0/0.)
    iw = np.minimum((dw + dx)[:, :, None], (gw + gx)[:, None, :]) - np.maximum(dx[:, :, None], gx[:, None, :])
    ih = np.minimum((dh + dy)[:, :, None], (gh + gy)[:, None, :]) - np.maximum(dy[:, :, None], gy[:, None, :])
    inter = iw * ih
    same_cat = pcat[:, :, None] == gcat[:, None, :]
    overlap = (iw > 0) & (ih > 0) & (inter > 0) & same_cat
    union = np.where(overlap, (darea[:, :, None] + garea[:, None, :]) - inter, 1.0)
    iou = np.where(overlap, inter / union, 0.0)  # [B, D, G]

    dt_matched, counted = _greedy_match(iou, g_ignore, d_outside, d_valid)
    return _accumulate(pcat, gcat, g_valid & ~g_ignore, same_cat, dt_matched, counted, d_valid)


def _greedy_match(iou: np.ndarray, g_ignore: np.ndarray, d_outside: np.ndarray, d_valid: np.ndarray):
    """COCOeval's matching for padded responses: (detection matched [B, T, D], detection counted [B, T, D])."""
    num_b, num_d, num_g = iou.shape
    num_t = len(IOU_THRESHOLDS)
    # Greedy matching, all responses and thresholds at once, one detection rank at a time (each detection sees
    # the gts its predecessors took). COCOeval scans gts regular-first and keeps the best IoU >= t, replacing it
    # on ties: so the pick is the highest IoU among unmatched regular candidates, the later gt on ties (gts are
    # stored in reverse, so argmax's first maximum is the later gt); among ignored candidates only when there
    # is no regular one.
    thr = _MATCH_THRESHOLDS[None, :, None]
    gt_free = np.ones((num_b, num_t, num_g), bool)
    dt_matched = np.zeros((num_b, num_t, num_d), bool)
    dt_ignore = np.zeros((num_b, num_t, num_d), bool)
    bb, tt = np.arange(num_b)[:, None], np.arange(num_t)[None, :]
    any_ignored = bool(g_ignore.any())
    g_regular = ~g_ignore[:, None, :]
    has_candidate = (iou >= _MATCH_THRESHOLDS[0]).any(axis=2)  # [B, D]
    for d in np.flatnonzero(has_candidate.any(axis=0)):
        row = iou[:, None, d, :]  # [B, 1, G]
        cand = (row >= thr) & gt_free
        if any_ignored:
            regular = cand & g_regular
            cand = np.where(regular.any(axis=2, keepdims=True), regular, cand)
        hit = cand.any(axis=2)  # [B, T]
        pick = (cand * row).argmax(axis=2)  # candidates have IoU >= .5 > 0 = the rest's score
        gt_free[bb, tt, pick] &= ~hit
        dt_matched[:, :, d] = hit
        if any_ignored:
            dt_ignore[:, :, d] = hit & g_ignore[bb, pick]
    dt_ignore |= ~dt_matched & d_outside[:, None, :]
    counted = ~dt_ignore & d_valid[:, None, :]
    return dt_matched, counted


def _accumulate(pcat, gcat, g_counted, same_cat, dt_matched, counted, d_valid) -> np.ndarray:
    """COCOeval's accumulate + summarize (stats[0]) per padded response, from the matching -> [B]."""
    num_b, num_t, num_d = dt_matched.shape
    # Accumulate per category. Detections are grouped by category along the last axis; `first` marks where a
    # group starts. Cumulative TP / FP counts restart at each group: subtract the exclusive running count at the
    # group's start (non-decreasing along the row, so a running max carries it forward). Counts are integers,
    # so this is exact.
    first = np.ones((num_b, num_d), bool)
    first[:, 1:] = pcat[:, 1:] != pcat[:, :-1]
    first = first[:, None, :]
    counts = np.empty((2, num_b, num_t, num_d))
    counts[0] = dt_matched & counted  # TP
    counts[1] = counted & ~dt_matched  # FP
    running = np.cumsum(counts, axis=-1)
    before_group = np.maximum.accumulate(np.where(first, running - counts, 0.0), axis=-1)
    tp_sum, fp_sum = running - before_group

    # Regular gts per (response, category) [B, K], and per detection, of the detection's category [B, D].
    n_pos = ((gcat[:, :, None] == np.arange(int(gcat.max()) + 1)) & g_counted[:, :, None]).sum(axis=1)
    det_n_pos = (same_cat & g_counted[:, None, :]).sum(axis=2)
    recall = tp_sum / np.maximum(det_n_pos, 1)[:, None, :]
    precision = np.where(d_valid[:, None, :], tp_sum / (fp_sum + tp_sum + _EPS), 0.0)
    # Monotone from the right within each group: a segmented suffix max in log2(D) doubling steps.
    shift = 1
    while shift < num_d:
        same = (pcat[:, :-shift] == pcat[:, shift:])[:, None, :]
        head = precision[..., :-shift]
        precision[..., :-shift] = np.where(same, np.maximum(head, precision[..., shift:]), head)
        shift *= 2
    # COCOeval reads precision[searchsorted(recall, r, 'left')] at each recall threshold r, 0 past the end:
    # position i is read by the thresholds r with recall[i-1] < r <= recall[i] (recall[-1] = 0 at a group
    # start). Count them rather than gather.
    reached = np.searchsorted(RECALL_THRESHOLDS, recall, side="right")  # thresholds r <= recall[i]
    reads = reached.copy()
    reads[..., 1:] -= np.where(first[..., 1:], 0, reached[..., :-1])
    scored = (det_n_pos > 0) & d_valid  # detections of categories with a regular gt
    ap_sum = np.where(scored[:, None, :], reads * precision, 0.0).sum(axis=(1, 2))
    n_scored = (n_pos > 0).sum(axis=1)
    denom = len(RECALL_THRESHOLDS) * num_t * np.maximum(n_scored, 1)
    return np.where(n_scored > 0, ap_sum / denom, 0.0)


def greedy_precision_recall(
    gt_boxes: Any,
    gt_labels: Sequence[str],
    pred_boxes: Any,
    pred_labels: Sequence[str | None],
    iou_threshold: float = GREEDY_IOU_THRESHOLD,
) -> tuple[float, float]:
    """(GP, GR): greedy precision and recall at IoU >= iou_threshold (0.5).

    Predictions in input order each take the unmatched gt of the same label with the highest IoU (rec.py's IoU;
    ties -> the lower gt index) if that IoU >= iou_threshold. GP = matched / N_pred, GR = matched / N_gt. Empty
    cases as for mAP: both empty -> (1, 1); exactly one empty -> (0, 0).
    """
    gt, gt_labels, pred, pred_labels = check_detection_inputs(gt_boxes, gt_labels, pred_boxes, pred_labels)
    n_gt, n_pred = gt.shape[0], pred.shape[0]
    if n_gt == 0 and n_pred == 0:
        return 1.0, 1.0
    if n_gt == 0 or n_pred == 0:
        return 0.0, 0.0
    same = np.array([[p == g for g in gt_labels] for p in pred_labels], bool)
    iou = np.where(same, pairwise_iou(pred, gt), -1.0)
    taken = np.zeros(n_gt, bool)
    matched = 0
    for i in range(n_pred):
        row = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(row))  # first maximum -> lowest gt index on ties
        if row[j] >= iou_threshold:
            taken[j] = True
            matched += 1
    return matched / n_pred, matched / n_gt
