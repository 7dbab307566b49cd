"""After a tiny training run: evaluation of the whole run directory, and its export as an HF model directory that
transformers loads offline with our logits, our prompts' token ids and our pixels."""
import importlib.util
import json
import os
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import pytest
from flax import nnx

from hf_reference import hf_logits, image_only_processor_class
from syngrpo_jax import export, train
from syngrpo_jax.checkpoint_sources import OrbaxParams, resolve_checkpoint
from syngrpo_jax.data.prompts import build_prompt
from syngrpo_jax.data.sample import load_image
from syngrpo_jax.data.sources import load_samples
from syngrpo_jax.models import qwen2_5_vl, safetensors_io
from syngrpo_jax.models.inputs import prepare_prompts
from syngrpo_jax.processing.tokenizer import Tokenizer
from syngrpo_jax.rollout.requests import prepare_request
from syngrpo_jax.run_dir import RunDir

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CPU = os.path.join(REPO, "configs", "tiny_cpu.py")
ARG = "scale=test,sft_steps=0,method=grpo,steps=2"  # checkpoints at steps 1 and 2; no data server


def tiny_config():
    spec = importlib.util.spec_from_file_location("tiny_cpu", TINY_CPU)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(ARG)


def cli(module, *args):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = tiny_config()
    train.train(config, str(root / "run"))
    out = root / "export"
    cli("syngrpo_jax.export", f"--checkpoint={root / 'run'}", f"--out={out}", "--dtype=float32")
    return dict(config=config, run=RunDir(str(root / "run")), export=str(out), root=root)


def test_evaluate_a_run_directory_gives_one_row_per_checkpoint_step(trained):
    run = trained["run"]
    assert os.path.isfile(run.config)  # the run's own config.json: it must not pass for an HF model directory
    out = trained["root"] / "eval_all"
    proc = cli("syngrpo_jax.evaluate", f"--config={TINY_CPU}:{ARG}", f"--checkpoint={run.root}", f"--workdir={out}")
    steps = resolve_checkpoint(run.root).steps
    assert steps == (1, 2)
    with open(out / "table.json") as f:
        assert [r["step"] for r in json.load(f)["rows"]] == list(steps)
    assert [json.loads(line)["step"] for line in proc.stdout.strip().splitlines()] == list(steps)
    with open(out / "table.md") as f:
        assert len(f.read().strip().splitlines()) == 2 + len(steps)


def _checkpoint_params(run, step):
    orbax = OrbaxParams(resolve_checkpoint(run.root), param_dtype=np.float32)
    try:
        return orbax.config, orbax.restore(step)
    finally:
        orbax.close()


def test_export_round_trips_through_our_loader(trained):
    config, params = _checkpoint_params(trained["run"], 2)
    names = sorted(os.listdir(trained["export"]))
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "preprocessor_config.json", "chat_template.json", "generation_config.json"):
        assert name in names
    back = nnx.to_pure_dict(nnx.state(qwen2_5_vl.from_pretrained(trained["export"])))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with open(os.path.join(trained["export"], "preprocessor_config.json")) as f:
        pre = json.load(f)
    assert pre["min_pixels"] == trained["config"].data.min_pixels and pre["max_pixels"] == trained["config"].data.max_pixels


def test_bfloat16_export_of_a_step_directory(trained, tmp_path):
    run = trained["run"]
    out = export.export(run.checkpoint(1), str(tmp_path / "bf16"), dtype="bfloat16")
    tensors = safetensors_io.SafetensorsDir(out)
    assert {tensors.get(n).dtype for n in tensors.names()} == {np.dtype(ml_dtypes.bfloat16)}
    _, params = _checkpoint_params(run, 1)
    model = qwen2_5_vl.from_pretrained(out)
    embed = np.asarray(nnx.to_pure_dict(nnx.state(model))["text"]["embed"])
    np.testing.assert_array_equal(embed, np.asarray(params["text"]["embed"]).astype(ml_dtypes.bfloat16).astype(
        np.float32))
    with pytest.raises(FileExistsError, match="--out="):
        export.export(run.root, out)
    with pytest.raises(ValueError, match="--step=7: not a finished checkpoint"):
        export.export(run.root, str(tmp_path / "x"), step=7)
    with pytest.raises(ValueError, match="already an HF model directory"):
        export.export(out, str(tmp_path / "y"))


def _prepared(trained, n=3):
    config = trained["config"]
    samples = load_samples(config.data, trained["run"].data)[:n]
    tok = Tokenizer.from_dir(trained["run"].policy)
    fmt = config.reward.response_format
    return samples, [prepare_request(s, tok, fmt, min_pixels=config.data.min_pixels,
                                     max_pixels=config.data.max_pixels) for s in samples], tok


def test_transformers_logits_equal_ours_on_a_padded_batch_with_images(trained):
    from transformers import Qwen2_5_VLForConditionalGeneration

    _, prepared, tok = _prepared(trained)
    config, params = _checkpoint_params(trained["run"], 2)
    ours = OrbaxParams(resolve_checkpoint(trained["run"].root), param_dtype=np.float32)
    model = ours.model(params)
    ours.close()
    text_only = np.asarray(tok.encode("a short text-only prompt"), np.int32)
    prompts = [p.request.prompt_ids for p in prepared] + [text_only]
    inputs = prepare_prompts(config, prompts, [p.request.pixel_values for p in prepared] + [None],
                             [p.request.image_grid_thw for p in prepared] + [None], pad_id=tok.pad_id,
                             length_multiple=8)
    ids, mask = np.asarray(inputs.input_ids), np.asarray(inputs.attention_mask)
    assert (mask == 0).any()  # padded
    pixels = np.concatenate([p.request.pixel_values for p in prepared])
    grid = np.concatenate([p.request.image_grid_thw for p in prepared])
    logits = np.asarray(model(ids, mask, pixels, grid))
    hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(trained["export"]).eval()
    ref = hf_logits(hf, ids.astype(np.int64), mask.astype(np.int64), pixels, grid)
    valid = mask.astype(bool)
    assert np.abs(ref[valid]).max() > 0.1  # not vanishingly small
    np.testing.assert_allclose(logits[valid], ref[valid], atol=1e-4, rtol=0)


def test_transformers_tokenizer_and_processor_reproduce_our_prompts(trained):
    from transformers import AutoImageProcessor, AutoTokenizer

    samples, prepared, _ = _prepared(trained)
    processor = image_only_processor_class().from_pretrained(trained["export"])
    tokenizer = AutoTokenizer.from_pretrained(trained["export"])
    assert type(AutoImageProcessor.from_pretrained(trained["export"])).__name__.startswith("Qwen2VLImageProcessor")
    fmt = trained["config"].reward.response_format
    for sample, p in zip(samples, prepared):
        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": build_prompt(sample, fmt)}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert text == tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        out = processor(text=[text], images=[load_image(sample)], return_tensors="np")
        np.testing.assert_array_equal(out["input_ids"][0], p.request.prompt_ids)
        np.testing.assert_array_equal(out["image_grid_thw"], p.request.image_grid_thw)
        np.testing.assert_array_equal(out["pixel_values"], p.request.pixel_values)
