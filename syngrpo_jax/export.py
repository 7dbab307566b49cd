r"""Export a run's checkpoint as a Hugging Face model directory: to serve it, push it, or score it elsewhere.

    python -m syngrpo_jax.export --checkpoint=workdirs/demo --out=exports/demo               # the latest step
    python -m syngrpo_jax.export --checkpoint=workdirs/demo/checkpoints/20 --out=exports/demo_20 --dtype=bfloat16
    python -m syngrpo_jax.export --checkpoint=runs/rec3b_syn --step=100 --out=/models/rec3b_syn_100

--checkpoint is a run directory (--step picks a step; default the latest) or one of its step directories. The
output directory (which must not exist yet, or be empty) gets
  config.json, model.safetensors (or model-0000k-of-0000n.safetensors + index past 5 GB per file)
                        the weights in --dtype (default: the run's model.dtype), written by
                        `models.hf_checkpoint.save_state`: one tensor at a time, gathered from its shards, each
                        file written once full, so the host never holds a second copy of the model;
  tokenizer files       as the run's policy/ holds them (tokenizer.json, tokenizer_config.json, ...);
  preprocessor_config.json  Qwen2-VL's image processor at the run's data.min_pixels / data.max_pixels, so images
                        are resized as in training;
  chat_template.json    the chat template (Qwen2.5-VL's);
  generation_config.json    stop ids <|im_end|> and <|endoftext|>, pad <|endoftext|>, when the run had none.
The directory is assembled next to --out and renamed into place, so a failed export never looks complete.

Loading it (offline, HF_HUB_OFFLINE=1):
  transformers  Qwen2_5_VLForConditionalGeneration.from_pretrained(DIR), AutoTokenizer.from_pretrained(DIR),
                AutoImageProcessor.from_pretrained(DIR) (Qwen2VLImageProcessorPil without torchvision).
                AutoProcessor.from_pretrained(DIR) also loads a video processor, which needs torchvision; without
                it, a Qwen2_5_VLProcessor subclass whose __init__ takes no video_processor loads the image
                processor, the tokenizer and the chat template from DIR and processes images and text the same
                way (tests/hf_reference.py: ImageOnlyQwen2_5_VLProcessor).
  this project  `models.qwen2_5_vl.from_pretrained(DIR)`, or `--config.model.path=DIR` for train/evaluate.
"""
from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import numpy as np

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write_json
from syngrpo_jax.checkpoint_sources import OrbaxParams, resolve_checkpoint
from syngrpo_jax.models import hf_checkpoint
from syngrpo_jax.models.config import Qwen25VLConfig
from syngrpo_jax.parallel.mesh import make_mesh
from syngrpo_jax.policy import TOKENIZER_FILES, dtype_of
from syngrpo_jax.processing.chat import QWEN2_5_VL_CHAT_TEMPLATE
from syngrpo_jax.processing import image as image_processing
from syngrpo_jax.processing.image import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from syngrpo_jax.processing.tokenizer import Tokenizer

log = logging.getLogger(__name__)
DTYPES = ("float32", "bfloat16")


def _run_config(run: run_dir.RunDir) -> dict:
    """The run's saved config.json as a dict ({} for a run directory without one)."""
    if not os.path.isfile(run.config):
        return {}
    with open(run.config) as f:
        return json.load(f)


def _preprocessor_config(config: Qwen25VLConfig, *, min_pixels: int, max_pixels: int,
                         base: dict | None = None) -> dict:
    """Qwen2-VL image processor settings equal to `processing.image` at these pixel bounds, over `base` (e.g. the
    base checkpoint's file)."""
    v = config.vision
    return {**(base or {}), **image_processing.preprocessor_config(
        min_pixels=min_pixels, max_pixels=max_pixels, patch_size=v.patch_size,
        temporal_patch_size=v.temporal_patch_size, merge_size=v.spatial_merge_size)}


def _write_processing_files(policy_dir: str, out: str, *, min_pixels: int, max_pixels: int,
                            config: Qwen25VLConfig) -> None:
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(policy_dir, name)):
            shutil.copy(os.path.join(policy_dir, name), os.path.join(out, name))

    def read(name):
        path = os.path.join(out, name)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    atomic_write_json(os.path.join(out, "preprocessor_config.json"), _preprocessor_config(
        config, min_pixels=min_pixels, max_pixels=max_pixels, base=read("preprocessor_config.json")))
    if read("chat_template.json") is None:
        template = (read("tokenizer_config.json") or {}).get("chat_template") or QWEN2_5_VL_CHAT_TEMPLATE
        atomic_write_json(os.path.join(out, "chat_template.json"), {"chat_template": template})
    if read("generation_config.json") is None:
        tok = Tokenizer.from_dir(out)
        atomic_write_json(os.path.join(out, "generation_config.json"), {
            "bos_token_id": tok.endoftext_id, "eos_token_id": list(tok.stop_ids), "pad_token_id": tok.pad_id})


def check_arguments(checkpoint: str, out: str, *, dtype: str | None = None, step: int | None = None):
    """(source, step, dtype, out, run config) after every check of the command line's values (errors name the
    flag), before anything heavy runs."""
    source = resolve_checkpoint(checkpoint)
    if source.kind == "hf":
        raise ValueError(f"--checkpoint={checkpoint!r} is already an HF model directory; give a run directory or "
                         f"a step directory of one")
    if step is not None and step not in source.steps:
        raise ValueError(f"--step={step}: not a finished checkpoint of {source.path!r} (steps: {list(source.steps)})")
    step = max(source.steps) if step is None else step
    run_config = _run_config(source.run)
    dtype = dtype or run_config.get("model", {}).get("dtype") or "float32"
    if dtype not in DTYPES:
        raise ValueError(f"--dtype={dtype!r}: choose one of {DTYPES}")
    out = os.path.abspath(os.path.expanduser(out))
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(f"--out={out!r} exists and is not an empty directory")
    return source, step, dtype, out, run_config


def export(checkpoint: str, out: str, *, dtype: str | None = None, step: int | None = None,
           max_shard_bytes: int = 5 * 1024**3) -> str:
    """Write step `step` (default: the source's latest) of `checkpoint` as an HF directory at `out`; returns it."""
    source, step, dtype, out, run_config = check_arguments(checkpoint, out, dtype=dtype, step=step)
    model_dtype = run_config.get("model", {}).get("dtype") or "float32"
    mesh = make_mesh() if jax.device_count() > 1 else None
    orbax = OrbaxParams(source, param_dtype=dtype_of(model_dtype), mesh=mesh)
    params = orbax.restore(step)
    orbax.close()
    tmp = f"{out}.partial"
    writer = jax.process_index() == 0
    if writer:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exporting step %d of %s as %s to %s", step, source.checkpoints_dir, dtype, out)
    hf_checkpoint.save_state(tmp, orbax.config, params, dtype=np.dtype(dtype_of(dtype)),
                             max_shard_bytes=max_shard_bytes)
    if writer:
        data = run_config.get("data", {})
        _write_processing_files(source.model_dir, tmp, config=orbax.config,
                                min_pixels=data.get("min_pixels", DEFAULT_MIN_PIXELS),
                                max_pixels=data.get("max_pixels", DEFAULT_MAX_PIXELS))
        if os.path.isdir(out):
            os.rmdir(out)  # empty, checked above
        os.replace(tmp, out)
    return out


def _cli() -> None:
    from absl import app, flags

    from syngrpo_jax.log_setup import setup_logging

    checkpoint = flags.DEFINE_string("checkpoint", None, "A run directory, or a step directory of one "
                                     "(<run>/checkpoints/<step>).", required=True)
    out = flags.DEFINE_string("out", None, "The HF model directory to write (must not exist, or be empty).",
                              required=True)
    dtype = flags.DEFINE_enum("dtype", None, list(DTYPES), "Weight dtype on disk (default: the run's model.dtype).")
    step = flags.DEFINE_integer("step", None, "The step to export from a run directory (default: the latest).")

    def main(argv) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        setup_logging()
        try:
            check_arguments(checkpoint.value, out.value, dtype=dtype.value, step=step.value)
        except (ValueError, FileNotFoundError, FileExistsError) as e:  # a bad flag value: its message, no traceback
            raise SystemExit(f"export: {e}") from None
        print(export(checkpoint.value, out.value, dtype=dtype.value, step=step.value))

    app.run(main)


if __name__ == "__main__":
    _cli()
