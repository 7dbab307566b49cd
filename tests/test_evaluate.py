"""Evaluation: metric values against independent computations (pycocotools for mAP), the three checkpoint kinds,
the command line, and errors that name the bad field."""
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from syngrpo_jax import eval_data, eval_scoring, evaluate, evaluator
from syngrpo_jax.checkpoint_sources import resolve_checkpoint
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.data import engine
from syngrpo_jax.policy import load_policy, save_architecture
from syngrpo_jax.rollout.base import Response, RolloutEngine
from syngrpo_jax.run_config import base_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(vocab_size=512, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
            vision_hidden_size=32, vision_depth=1, vision_heads=1, vision_intermediate_size=64,
            fullatt_block_indexes=(0,))
MAX_TOKENS = 24
SPLITS = dict(rec_val=dict(task="rec", source="engine", num=6, seed=1, size=112),
              qa_val=dict(task="qa", source="engine", num=6, seed=1, size=112))


def make_config(splits=SPLITS, pixels=112 * 112):
    c = base_config()
    c.model.tiny.update(TINY)
    c.data.min_pixels = c.data.max_pixels = pixels
    c.eval.batch_size = 4
    c.eval.max_tokens = MAX_TOKENS
    for name, split in splits.items():
        c.eval.splits[name] = split
    return c


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny random model as an HF dir, and a training workdir with checkpoints at steps 1 (the same weights) and
    2 (final norm zeroed: every logit 0, so greedy decoding repeats token 0). The workdir holds the run's
    config.json, as a trainer's does: it must not be taken for an HF model directory."""
    root = tmp_path_factory.mktemp("eval")
    config = make_config()
    policy = load_policy(config.model, str(root), seed=0)
    workdir = root / "run"
    save_architecture(policy, str(workdir / "policy"))
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    params = nnx.to_pure_dict(nnx.state(policy.model))
    silent = jax.tree.map(lambda x: x, params)
    silent["text"]["norm"] = jnp.zeros_like(params["text"]["norm"])
    ckpt = Checkpointer(str(workdir / "checkpoints"), async_save=False)
    for step, p in ((1, params), (2, silent)):
        ckpt.save(step, params=p, opt_state={"count": jnp.zeros((), jnp.int32)}, state={"step": step})
    ckpt.close()
    return dict(root=root, config=config, policy=policy, workdir=str(workdir))


def read_predictions(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def check_metrics_structure(metrics, splits=SPLITS):
    assert set(metrics) == {"step", "source", "response_format", "splits"}
    assert set(metrics["splits"]) == set(splits)
    for name, split in splits.items():
        m = metrics["splits"][name]
        assert m["task"] == split["task"] and m["num_samples"] == split["num"]
        for key in ("format_valid", "truncated"):
            assert isinstance(m[key], float) and 0 <= m[key] <= 1
        assert 1 <= m["mean_response_tokens"] <= MAX_TOKENS
        if split["task"] == "rec":
            assert set(m) == {"task", "num_samples", "acc@0.5", "miou", "format_valid", "mean_response_tokens",
                              "truncated"}
            assert 0 <= m["acc@0.5"] <= 1 and 0 <= m["miou"] <= 1
        if split["task"] == "qa":
            assert set(m) == {"task", "num_samples", "accuracy", "accuracy_by_category", "accuracy_by_difficulty",
                              "format_valid", "mean_response_tokens", "truncated"}
            for group in ("accuracy_by_category", "accuracy_by_difficulty"):
                assert sum(g["num_samples"] for g in m[group].values()) == split["num"]
                assert all(0 <= g["accuracy"] <= 1 for g in m[group].values())


# ------------------------------------------------------------------------------------ the three checkpoint kinds


@pytest.fixture(scope="module")
def hf_eval(run):
    out = run["root"] / "hf_eval"
    results = evaluate.evaluate_checkpoint(run["config"], run["policy"].model_dir, str(out), progress=False)
    return results, out


def test_hf_dir_end_to_end(hf_eval):
    results, out = hf_eval
    assert list(results) == [None]
    metrics = read_json(out / "metrics.json")
    assert metrics == results[None]
    check_metrics_structure(metrics)
    assert metrics["step"] is None and metrics["response_format"] == "syn_grpo"
    rows = read_predictions(out / "predictions.jsonl")
    assert len(rows) == 12
    assert sorted(r["sample_id"] for r in rows if r["split"] == "rec_val") == [engine.sample_id("rec", i)
                                                                                for i in range(6)]
    for r in rows:
        assert {"split", "sample_id", "response", "answer", "scores", "gt", "format_valid", "num_tokens",
                "finish_reason"} <= set(r)
        assert isinstance(r["response"], str) and 1 <= r["num_tokens"] <= MAX_TOKENS
    # Per-sample scores add up to the split metrics.
    rec = [r for r in rows if r["split"] == "rec_val"]
    assert metrics["splits"]["rec_val"]["miou"] == pytest.approx(np.mean([r["scores"]["iou"] for r in rec]))
    assert metrics["splits"]["rec_val"]["mean_response_tokens"] == pytest.approx(np.mean([r["num_tokens"]
                                                                                          for r in rec]))


def test_step_dir_and_workdir(run, hf_eval):
    _, hf_out = hf_eval
    step1 = os.path.join(run["workdir"], "checkpoints", "1")
    results = evaluate.evaluate_checkpoint(run["config"], step1, progress=False)
    assert list(results) == [1]
    eval_root = os.path.join(run["workdir"], "eval")
    metrics = read_json(os.path.join(eval_root, "1", "metrics.json"))
    check_metrics_structure(metrics)
    assert metrics["step"] == 1
    # Step 1 holds the HF dir's weights: the same greedy responses.
    responses = lambda rows: {(r["split"], r["sample_id"]): r["response"] for r in rows}  # noqa: E731
    assert (responses(read_predictions(os.path.join(eval_root, "1", "predictions.jsonl")))
            == responses(read_predictions(hf_out / "predictions.jsonl")))

    out = os.path.join(run["root"], "workdir_eval")
    results = evaluate.evaluate_checkpoint(run["config"], run["workdir"], out, progress=False)
    assert sorted(results) == [1, 2]
    # Step 2's zeroed final norm makes every logit 0: greedy picks token 0 every time, so its own weights were used.
    silent = run["policy"].tokenizer.decode([0] * MAX_TOKENS)
    assert {r["response"] for r in read_predictions(os.path.join(out, "2", "predictions.jsonl"))} == {silent}
    assert responses(read_predictions(os.path.join(out, "1", "predictions.jsonl"))) == responses(
        read_predictions(hf_out / "predictions.jsonl"))
    table = read_json(os.path.join(out, "table.json"))
    assert [r["step"] for r in table["rows"]] == [1, 2]
    assert table["columns"][0] == "step" and "rec_val/acc@0.5" in table["columns"] and "qa_val/accuracy" in \
        table["columns"]
    for row, step in zip(table["rows"], (1, 2)):
        assert row == {"step": step, **evaluator.scalar_metrics(results[step])}
    md = open(os.path.join(out, "table.md")).read().splitlines()
    assert len(md) == 4 and md[0].startswith("| step | ") and md[2].startswith("| 1 |") and md[3].startswith("| 2 |")


def test_command_line(run, tmp_path):
    config_file = tmp_path / "cfg.py"
    config_file.write_text(
        "from syngrpo_jax.run_config import base_config\n"
        "def get_config(arg=None):\n"
        "    c = base_config()\n"
        f"    c.model.tiny.update({TINY!r})\n"
        "    c.data.min_pixels = c.data.max_pixels = 112 * 112\n"
        "    c.eval.batch_size = 4\n"
        f"    c.eval.splits.rec_val = {SPLITS['rec_val']!r}\n"
        "    return c\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "syngrpo_jax.evaluate", f"--config={config_file}",
         f"--checkpoint={os.path.join(run['workdir'], 'checkpoints', '2')}", f"--workdir={out}",
         "--config.eval.max_tokens=5"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not re.search(r"^I\d{4} ", proc.stderr, re.M), proc.stderr[:2000]  # no absl INFO lines (orbax chatter)
    metrics = read_json(out / "2" / "metrics.json")
    assert metrics["step"] == 2 and metrics["splits"]["rec_val"]["mean_response_tokens"] == 5
    assert json.loads(proc.stdout.strip().splitlines()[-1])["rec_val/num_samples"] == 6
    assert [r["step"] for r in read_json(out / "table.json")["rows"]] == [2]


# ---------------------------------------------------------------------------- metric values, independently computed


class FakeEngine(RolloutEngine):
    """Answers each request (request_id = sample id) with a fixed text."""

    def __init__(self, texts):
        self.texts = texts
        self.calls = []

    def generate(self, requests, params):
        self.calls.append(len(requests))
        return [[Response(np.arange(len(self.texts[r.request_id]) % 7 + 1, dtype=np.int32), self.texts[r.request_id],
                          np.zeros(1, np.float32), "stop", 0)] for r in requests]

    def update_weights(self, params, version):
        pass

    @property
    def weight_version(self):
        return 0


def wrap(answer, think="ok"):
    return f"<think>{think}</think><score>0.5</score><description>a beach</description><answer>{answer}</answer>"


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def coco_eval(gts, preds, image_ids=None):
    """pycocotools' stats[0]: gts / preds per image as lists of (box xyxy, label); every prediction scores 1."""
    cats = sorted({lab for g in gts for _, lab in g} | {lab for p in preds for _, lab in p if lab is not None})
    cat_id = {c: k + 1 for k, c in enumerate(cats)}
    xywh = lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]]  # noqa: E731
    anns = [{"id": k + 1, "image_id": i + 1, "category_id": cat_id[lab], "bbox": xywh(b),
             "area": xywh(b)[2] * xywh(b)[3], "iscrowd": 0}
            for k, (i, b, lab) in enumerate((i, b, lab) for i, g in enumerate(gts) for b, lab in g)]
    dts = [{"image_id": i + 1, "category_id": cat_id[lab], "bbox": xywh(b), "score": 1.0}
           for i, p in enumerate(preds) for b, lab in p if lab in cat_id]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i + 1, "width": 10**6, "height": 10**6} for i in range(len(gts))],
                      "annotations": anns, "categories": [{"id": v, "name": k} for k, v in cat_id.items()]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dts), "bbox")
        if image_ids is not None:
            ev.params.imgIds = [i + 1 for i in image_ids]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0]


@pytest.fixture(scope="module")
def fake_eval(run, tmp_path_factory):
    """Known responses (right, wrong, malformed) for REC, OVD and QA splits, at a 56x56 model view of 112x112
    images: predicted boxes are in model pixels, half the original coordinates."""
    splits = dict(SPLITS, ovd_val=dict(task="ovd", source="engine", num=4, seed=3, size=112))
    config = make_config(splits, pixels=56 * 56)
    data = eval_data.build_splits(config, str(tmp_path_factory.mktemp("fake_data")))
    rec, qa, ovd = data["rec_val"], data["qa_val"], data["ovd_val"]
    half = lambda b: [float(v) / 2 for v in b]  # noqa: E731
    r = [s.boxes[0].tolist() for s in rec]
    texts = {
        rec[0].sample_id: wrap(json.dumps({"bbox_2d": half(r[0]), "label": "x"})),  # exact
        rec[1].sample_id: wrap(json.dumps({"bbox_2d": half([r[1][0] + 6, r[1][1] + 6, r[1][2] + 6, r[1][3] + 6])})),
        rec[2].sample_id: wrap(json.dumps({"bbox_2d": r[2]})),  # original pixels: twice too large after rescaling
        rec[3].sample_id: "<think>no answer tag</think>",
        rec[4].sample_id: f"<answer>{json.dumps([half(r[4])])}</answer>",  # right box, wrong format
        rec[5].sample_id: wrap("[1, 2, 3]"),  # not a box
    }
    qa_right = [True, False, True, False, True, False]
    for s, right in zip(qa, qa_right):
        texts[s.sample_id] = wrap(f"\\boxed{{{s.answer if right else s.answer + '1'}}}")
    texts[qa[4].sample_id] = wrap(f"it is \\boxed{{{qa[4].answer}}}", think="")  # lenient parse; empty think is fine
    texts[qa[5].sample_id] = "\\boxed{" + qa[5].answer + "}"  # no answer tag: wrong
    qa_right[5] = False
    o = [[(b.tolist(), lab) for b, lab in zip(s.boxes, s.labels)] for s in ovd]
    absent = next(lab for lab in {lab for g in o for _, lab in g} if lab not in {lab for _, lab in o[1]})
    ovd_preds = [
        o[0],  # perfect
        o[1][: max(1, len(o[1]) // 2)] + [([10.0, 10.0, 40.0, 40.0], absent)],  # half, plus a category not there
        None,  # malformed
        [(b, f"  {lab.upper()} ") for b, lab in o[3]],  # labels compare case-folded
    ]
    for s, pred in zip(ovd, ovd_preds):
        texts[s.sample_id] = "<answer>[{\"bbox_2d\": [1, 2" if pred is None else wrap(json.dumps(
            [{"bbox_2d": half(b), "label": lab} for b, lab in pred]))
    fake = FakeEngine(texts)
    out = tmp_path_factory.mktemp("fake_eval")
    metrics = evaluator.Evaluator(fake, run["policy"].tokenizer, config, data, progress=False).evaluate(
        str(out), step=7)
    return dict(metrics=metrics, rows=read_predictions(out / "predictions.jsonl"), data=data, texts=texts,
                r=r, qa_right=qa_right, o=o, ovd_preds=ovd_preds, engine=fake)


def test_rec_metrics_exact(fake_eval):
    m, r = fake_eval["metrics"]["splits"]["rec_val"], fake_eval["r"]
    ious = [1.0, iou([v + 6 for v in r[1]], r[1]), iou([2 * v for v in r[2]], r[2]), 0.0, 1.0, 0.0]
    assert m["acc@0.5"] == pytest.approx(sum(v > 0.5 for v in ious) / 6, abs=1e-12)
    assert m["miou"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert m["format_valid"] == pytest.approx(3 / 6)  # 0, 1, 2 (5 has a valid shape but no box)
    rows = {x["sample_id"]: x for x in fake_eval["rows"] if x["split"] == "rec_val"}
    for s, expected in zip(fake_eval["data"]["rec_val"], ious):
        assert rows[s.sample_id]["scores"]["iou"] == pytest.approx(expected, abs=1e-12)
        assert rows[s.sample_id]["scores"]["correct"] == (expected > 0.5)
        assert rows[s.sample_id]["response"] == fake_eval["texts"][s.sample_id]
    first = fake_eval["data"]["rec_val"][0].sample_id
    assert rows[first]["answer"]["box"] == r[0] and rows[first]["model_hw"] == [56, 56]
    assert rows[first]["image_hw"] == [112, 112]
    assert rows[fake_eval["data"]["rec_val"][3].sample_id]["answer"] is None


def test_qa_metrics_exact(fake_eval):
    m, qa, right = fake_eval["metrics"]["splits"]["qa_val"], fake_eval["data"]["qa_val"], fake_eval["qa_right"]
    assert m["accuracy"] == pytest.approx(np.mean(right))
    for key, group in (("qa_category", "accuracy_by_category"), ("difficulty", "accuracy_by_difficulty")):
        expected = {}
        for s, ok in zip(qa, right):
            expected.setdefault(str(s.meta[key]), []).append(ok)
        assert m[group] == {k: {"accuracy": pytest.approx(np.mean(v)), "num_samples": len(v)}
                            for k, v in expected.items()}
    assert m["format_valid"] == pytest.approx(5 / 6)


def test_detection_metrics_exact(fake_eval):
    m, o, preds = fake_eval["metrics"]["splits"]["ovd_val"], fake_eval["o"], fake_eval["ovd_preds"]
    folded = [None if p is None else [(b, lab.strip().lower()) for b, lab in p] for p in preds]
    per_image = [0.0 if p is None else coco_eval(o, [q if q is not None else [] for q in folded], image_ids=[i])
                 for i, p in enumerate(folded)]
    assert m["map"] == pytest.approx(np.mean(per_image), abs=1e-12)
    assert per_image[0] == pytest.approx(1.0) and per_image[3] == pytest.approx(1.0)
    assert m["coco_map"] == pytest.approx(coco_eval(o, [p or [] for p in folded]), abs=1e-12)
    n_pred = sum(len(p) for p in preds if p is not None)
    n_gt = sum(len(g) for g in o)
    n_matched = len(o[0]) + (len(preds[1]) - 1) + len(o[3])  # every copied box matches; the absent label cannot
    assert (m["num_predictions"], m["num_gt"], m["num_matched"]) == (n_pred, n_gt, n_matched)
    assert m["gp"] == pytest.approx(n_matched / n_pred) and m["gr"] == pytest.approx(n_matched / n_gt)
    assert m["format_valid"] == pytest.approx(3 / 4)


def test_batches_padded_to_batch_size(fake_eval):
    # 6 + 6 + 4 samples in batches of 4: short last batches are padded, so the sampler sees one batch shape.
    assert fake_eval["engine"].calls == [4] * 5
    assert fake_eval["metrics"]["step"] == 7
    assert len(fake_eval["rows"]) == 16


def test_coco_map_equals_pycocotools():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d"]
    gts, preds = [], []
    for i in range(14):
        g = []
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 200, 2)
            g.append(([x, y, x + rng.uniform(2, 60), y + rng.uniform(2, 60)], labels[rng.integers(3)]))
        p = []
        for b, lab in g:
            if rng.random() < 0.8:
                jitter = rng.normal(0, rng.choice([0.5, 3, 10]), 4)
                p.append(((np.asarray(b) + jitter).tolist(), lab if rng.random() < 0.85 else labels[rng.integers(4)]))
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, 200, 2)
            p.append(([x, y, x + rng.uniform(-5, 50), y + rng.uniform(2, 50)], labels[rng.integers(4)]))
        rng.shuffle(p)
        gts.append(g)
        preds.append(p)
    # An IoU tie: the first detection overlaps both gts equally (90/110) and COCOeval gives it the later one, which
    # leaves the earlier gt for the second detection (IoU 1; the later gt would only be 80/120).
    gts[0] = [([0.0, 0.0, 10.0, 10.0], "a"), ([2.0, 0.0, 12.0, 10.0], "a")]
    preds[0] = [([1.0, 0.0, 11.0, 10.0], "a"), ([0.0, 0.0, 10.0, 10.0], "a")]
    # An inverted box (negative area) ranked first: outside the area range, so ignored rather than a false positive.
    gts[1] = [([0.0, 0.0, 10.0, 10.0], "b")]
    preds[1] = [([20.0, 20.0, 15.0, 30.0], "b"), ([0.0, 0.0, 10.0, 10.0], "b")]
    # More than MAX_DETS predictions of one category in one image, for two identical gts.
    gts[2] = [([10.0, 10.0, 50.0, 50.0], "c"), ([10.0, 10.0, 50.0, 50.0], "c")]
    preds[2] = [([10.0 + k % 7, 10.0, 50.0, 50.0 + k % 5], "c") for k in range(130)]
    # A gt just above the area range (ignored) over a regular one: the detection equal to the ignored gt still goes
    # to the regular gt (IoU 0.99996), which COCOeval prefers to any ignored gt.
    gts[3] = [([0.0, 0.0, 100001.0, 100001.0], "a"), ([0.0, 0.0, 99999.0, 99999.0], "a")]
    preds[3] = [([0.0, 0.0, 100001.0, 100001.0], "a")]
    ours = eval_scoring.coco_map([[b for b, _ in g] for g in gts], [[lab for _, lab in g] for g in gts],
                             [[b for b, _ in p] for p in preds], [[lab for _, lab in p] for p in preds])
    assert 0.05 < ours < 0.95
    assert ours == pytest.approx(coco_eval(gts, preds), abs=1e-12)
    assert eval_scoring.coco_map([[]], [[]], [[[0, 0, 5, 5]]], [["a"]]) is None


# -------------------------------------------------------------------------------------------------- bad inputs


def test_bad_checkpoint_paths(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="--checkpoint='/nonexistent/x'"):
        resolve_checkpoint("/nonexistent/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"--checkpoint='.*empty' is none of the kinds.*HF model directory"):
        resolve_checkpoint(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"policy'? has config.json but no \*.safetensors"):
        resolve_checkpoint(os.path.join(run["workdir"], "policy"))
    (tmp_path / "nopolicy" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ValueError, match="without any finished checkpoint"):
        resolve_checkpoint(str(tmp_path / "nopolicy"))
    (tmp_path / "nopolicy2").mkdir()
    os.symlink(os.path.join(run["workdir"], "checkpoints"), tmp_path / "nopolicy2" / "checkpoints")
    with pytest.raises(FileNotFoundError, match=r"nopolicy2/policy' has no config.json"):
        resolve_checkpoint(str(tmp_path / "nopolicy2"))
    kinds = {resolve_checkpoint(p).kind: resolve_checkpoint(p).steps
             for p in (run["workdir"], os.path.join(run["workdir"], "checkpoints", "2"), run["policy"].model_dir)}
    assert kinds == {"workdir": (1, 2), "step": (2,), "hf": ()}


def test_files_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    rec = engine.generate(tmp_path / "rec", "rec", 3, seed=5, cfg=engine.EngineConfig(width=64, height=64),
                          progress=False)
    ovd = engine.generate(tmp_path / "ovd", "ovd", 6, seed=5, cfg=engine.EngineConfig(width=64, height=64),
                          progress=False)
    limit = 2
    kept = [s.sample_id for s in ovd if max(s.labels.count(lab) for lab in s.labels) <= limit]
    assert 0 < len(kept) < len(ovd)
    config = make_config(dict(rec_files=dict(task="rec", source="files", path="~/rec/rec.jsonl"),
                              ovd_files=dict(task="ovd", source="files", path="~/ovd/ovd.json",
                                             image_root="~/ovd", max_boxes_per_category=limit)))
    data = eval_data.build_splits(config, str(tmp_path / "unused"))
    assert [s.sample_id for s in data["rec_files"]] == [s.sample_id for s in rec]
    assert [s.sample_id for s in data["ovd_files"]] == kept
    config.eval.num_samples = 1
    assert [len(v) for v in eval_data.build_splits(config, str(tmp_path / "unused")).values()] == [1, 1]


@pytest.mark.parametrize("split, message", [
    (dict(task="det", source="engine"), "eval.splits.bad.task='det': unknown task"),
    (dict(task="rec", source="files"), "eval.splits.bad.path='': source='files' needs the annotation file"),
    (dict(task="qa", source="files", path="/no/such.jsonl"), "eval.splits.bad.path='/no/such.jsonl': no such file"),
    (dict(task="isr", source="engine"), "eval.splits.bad.task='isr': the data engine makes"),
    (dict(task="rec", source="web"), "eval.splits.bad.source='web': unknown source"),
    (dict(task="rec", sed=3), "eval.splits.bad.sed=3: unknown field"),
    (dict(task="rec", difficulty=5), "eval.splits.bad.difficulty=5"),
    (dict(task="qa", families="cubes,histogram"), "eval.splits.bad.families='cubes,histogram': comma-separated"),
    (dict(task="qa", photo="yes"), "eval.splits.bad.photo='yes': must be True or False"),
])
def test_bad_split_config(tmp_path, split, message):
    config = make_config(dict(ok=SPLITS["rec_val"], bad=split))
    with pytest.raises(ValueError, match=re.escape(message)):
        eval_data.build_splits(config, str(tmp_path))
    assert not os.listdir(tmp_path)  # every split is checked before any is generated


def test_bad_eval_settings(run, tmp_path):
    with pytest.raises(ValueError, match="eval.splits is empty"):
        eval_data.build_splits(make_config({}), str(tmp_path))
    config = make_config(dict(rec_val=dict(SPLITS["rec_val"], num=1)))
    data = eval_data.build_splits(config, str(tmp_path))
    config.eval.batch_size = 0
    with pytest.raises(ValueError, match="eval.batch_size=0"):
        evaluator.Evaluator(FakeEngine({}), run["policy"].tokenizer, config, data)
    config.eval.batch_size, config.eval.max_tokens = 4, 0
    with pytest.raises(ValueError, match="eval.max_tokens=0"):
        evaluator.Evaluator(FakeEngine({}), run["policy"].tokenizer, config, data)
