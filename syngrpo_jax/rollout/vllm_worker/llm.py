"""The vLLM engine the worker owns: built once, then generate, process_images and load_weights.

Choices that make the worker sample exactly what the trainer later scores:
- prompts are token ids with ONE image placeholder per image plus the images (vLLM expands the placeholder
  with its own Qwen2.5-VL processor); the images are the trainer's already-resized pixels (see
  processing.image.pixels_to_image), and the processor is transformers' PIL one, the implementation our
  preprocessing equals bit for bit (`_prefer_pil_image_processor`), so vLLM's pixel_values are the trainer's;
- `logprobs_mode="processed_logprobs"`: log-probs of the distribution actually sampled from (temperature
  applied, banned tokens, top-k/top-p), not vLLM's default raw log-softmax;
- pixels are normalised by that processor, not by vLLM's on-device fused normaliser (rounds differently);
- the checkpoint's generation_config.json is ignored (`generation_config="vllm"`): only the request's
  parameters count, and only the request's stop ids stop a response (`ignore_eos`);
- after every weight load the prefix (KV) cache and the encoder (vision embedding) cache are reset: both were
  computed with the old weights. vLLM's multimodal processor cache holds preprocessed pixels, which do not
  depend on weights, so it stays.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

log = logging.getLogger(__name__)

_BAN = -100.0  # vLLM clamps logit_bias to [-100, 100]; e^-100 makes a token unsampleable at any sane temperature


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    model: str  # HF checkpoint directory
    dtype: str = "auto"  # float32 | bfloat16 | float16 | auto (the checkpoint's)
    max_model_len: int = 4096
    kv_cache_gb: float = 1.0  # CPU: the KV cache size; GPU: see gpu_memory_utilization
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    min_pixels: int = 56 * 56  # the run's image bounds (data.min_pixels / max_pixels)
    max_pixels: int = 12845056
    max_images: int = 4  # images per prompt
    seed: int = 0
    enforce_eager: bool = True  # no CUDA graphs / torch.compile (start-up time; the CPU backend needs it)


def _prefer_pil_image_processor() -> None:
    """Make transformers pick the PIL Qwen2-VL image processor even though torchvision imports here.

    Its torchvision one resizes with different kernels and fuses the normalisation, so its pixel_values differ
    from ours (up to 3e-2 with a resize, a few ulp without): the trainer would score responses to other pixels.
    transformers keeps a list of image processors that default to the PIL backend "to avoid important differences
    in outputs"; these two names join it. Checked after the engine is built (`check_image_processor`).
    """
    from transformers.models.auto import image_processing_auto

    for name in ("Qwen2VLImageProcessor", "Qwen2_5_VLImageProcessor"):
        if name not in image_processing_auto.DEFAULT_TO_PIL_BACKEND_IMAGE_PROCESSORS:
            image_processing_auto.DEFAULT_TO_PIL_BACKEND_IMAGE_PROCESSORS.append(name)


class VllmHost:
    def __init__(self, settings: EngineSettings):
        self.settings = settings
        if settings.tensor_parallel_size == 1:
            # The engine core in this process: ~10 s start instead of ~27 s, and collective_rpc stays in-process.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(settings.kv_cache_gb))))
        _prefer_pil_image_processor()
        from vllm import LLM
        from vllm.platforms import current_platform

        # vLLM's CPU backend crashes ("CPU Generator does not use offset") when a prefill split across steps
        # (chunked prefill) meets per-request seeds, which every request here has: prefill prompts whole.
        cpu = current_platform.is_cpu()
        started = time.perf_counter()
        self.llm = LLM(
            model=settings.model, dtype=settings.dtype, max_model_len=settings.max_model_len,
            enforce_eager=settings.enforce_eager, seed=settings.seed, generation_config="vllm",
            logprobs_mode="processed_logprobs", tensor_parallel_size=settings.tensor_parallel_size,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            distributed_executor_backend="uni" if settings.tensor_parallel_size == 1 else None,
            limit_mm_per_prompt={"image": settings.max_images, "video": 0},
            mm_processor_kwargs={"size": self.image_size()},
            # Normalise pixels in the processor (PIL, float32 exactly like ours), not on the device from uint8:
            # vLLM's fused device normalisation rounds differently, a few ulp off the trainer's pixels.
            mm_device_do_normalize=False,
            enable_chunked_prefill=not cpu, max_num_batched_tokens=max(settings.max_model_len, 8192) if cpu else None,
            worker_extension_cls="syngrpo_jax.rollout.vllm_worker.extension.WeightLoader")
        self.tokenizer = self.llm.get_tokenizer()
        hf_config = self.llm.llm_engine.model_config.hf_config
        self.image_token_id = int(hf_config.image_token_id)
        self.banned = {int(getattr(hf_config, k)): _BAN for k in
                       ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}
        self.vocab_size = int(hf_config.get_text_config().vocab_size)
        self.check_image_processor()
        log.info("vLLM engine for %s ready in %.1f s", settings.model, time.perf_counter() - started)

    def image_size(self) -> dict:
        return {"shortest_edge": int(self.settings.min_pixels), "longest_edge": int(self.settings.max_pixels)}

    def image_processor(self):
        from vllm.multimodal import MULTIMODAL_REGISTRY

        processor = MULTIMODAL_REGISTRY.create_processor(self.llm.llm_engine.model_config)
        return processor.info.get_hf_processor().image_processor

    def check_image_processor(self) -> None:
        name = type(self.image_processor()).__name__
        if not name.endswith("Pil"):
            raise RuntimeError(f"vLLM's image processor is {name}, not transformers' PIL one: its pixels would "
                               "differ from the trainer's (see _prefer_pil_image_processor)")

    def process_images(self, images):
        """pixel_values [patches, D] float32 and grid_thw [n, 3] from the processor vLLM runs, for checks."""
        out = self.image_processor()(images=images, size=self.image_size(), return_tensors="np")
        return out["pixel_values"], out["image_grid_thw"]

    def generate(self, prompts, images_per_prompt, params: dict):
        """prompts: the protocol's Prompt list; images_per_prompt: PIL images of each. Returns (prompt lengths
        after expansion, per prompt a list of n dicts {ids, logprobs, text, finish})."""
        from vllm import SamplingParams

        inputs, sampling = [], []
        for prompt, images in zip(prompts, images_per_prompt):
            placeholders = sum(t == self.image_token_id for t in prompt.ids)
            if placeholders != len(images):
                raise ValueError(f"a prompt has {placeholders} image placeholders (id {self.image_token_id}) for "
                                 f"{len(images)} images; send one placeholder per image")
            item = {"prompt_token_ids": list(prompt.ids)}
            if images:
                item["multi_modal_data"] = {"image": images}
            inputs.append(item)
            sampling.append(SamplingParams(
                n=params["n"], temperature=params["temperature"], top_p=params["top_p"], top_k=params["top_k"],
                max_tokens=params["max_tokens"], stop_token_ids=params["stop_token_ids"], ignore_eos=True,
                seed=prompt.seed, logprobs=0, logit_bias=self.banned, detokenize=False,
                skip_special_tokens=False))
        from vllm.exceptions import VLLMValidationError

        try:
            outputs = self.llm.generate(inputs, sampling, use_tqdm=False)
        except VLLMValidationError as e:  # vLLM's own request checks (e.g. a prompt over max_model_len)
            raise ValueError(str(e)) from e
        stop = set(params["stop_token_ids"])
        return [len(o.prompt_token_ids) for o in outputs], [
            [self._response(c, stop) for c in o.outputs] for o in outputs]

    def _response(self, completion, stop: set) -> dict:
        ids = [int(t) for t in completion.token_ids]
        logprobs = [float(step[t].logprob) for step, t in zip(completion.logprobs, ids)]
        stopped = bool(ids) and ids[-1] in stop
        if completion.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM finished a response with reason {completion.finish_reason!r}")
        text = self.tokenizer.decode(ids[:-1] if stopped else ids, skip_special_tokens=False)
        return {"ids": ids, "logprobs": logprobs, "text": text, "finish": "stop" if stopped else "length"}

    def load_weights(self, path: str, table: list) -> None:
        """Load pushed weights (a raw file + table) in place, then drop every cache built with the old ones."""
        self.llm.collective_rpc("syngrpo_load_weights", args=(path, table))
        self.llm.llm_engine.reset_encoder_cache()
        self.llm.reset_prefix_cache()
