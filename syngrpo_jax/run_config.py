"""The run configuration: every knob of training and evaluation, with its default and meaning.

Config files under configs/ start from `base_config()` and change what their setting needs (big_vision style:
`get_config(arg)` per file, the arg parsed from `--config=configs/rec.py:qwen2_5_vl_3b,method=grpo`). Any field
can be overridden on the command line (`--config.optim.learning_rate=2e-6`). `methods.configure(config, name)`
writes a method's settings (response format, rewards, synthesis, loss variant) into the config, so what a run
does is visible in its saved config.
"""
from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """'a=1,b=x,flag' -> {'a': 1, 'b': 'x', 'flag': True} over `defaults` (types follow the defaults)."""
    out = ml_collections.ConfigDict(defaults)
    for part in filter(None, (arg or "").split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in out:
            raise ValueError(f"config argument {key!r} is unknown; known: {sorted(defaults)}")
        if not value:
            out[key] = True
            continue
        kind = type(defaults[key])
        try:
            out[key] = ((value.lower() in ("1", "true", "yes")) if kind is bool else
                        kind(value) if defaults[key] is not None else value)
        except ValueError:
            raise ValueError(f"config argument {key}={value!r}: expected a {kind.__name__}") from None
    return out


PAPER_MODELS = {  # local checkpoint directories (download them yourself; nothing is fetched at run time)
    "qwen2_5_vl_3b": "~/models/Qwen2.5-VL-3B-Instruct",
    "qwen2_5_vl_7b": "~/models/Qwen2.5-VL-7B-Instruct",
}


def paper_setting(c: ml_collections.ConfigDict, model: str) -> ml_collections.ConfigDict:
    """The paper's training setting on top of a config: Qwen2.5-VL-3B/7B, 2,000 samples, 5 epochs, batch 20,
    G = 6, AdamW at lr 1e-6, gamma 0.7; bfloat16 with rematerialised layers; the data server runs SDXL
    ControlNet inpainting on its own GPU (set synthesis.server_overrides.device and the model dirs)."""
    if model not in PAPER_MODELS:
        raise ValueError(f"config argument model={model!r} is unknown; choose one of {sorted(PAPER_MODELS)}")
    c.model.path = PAPER_MODELS[model]
    c.model.tiny = None
    c.model.dtype = "bfloat16"
    c.model.remat = "full"
    c.model.attention_impl = "jax_nn"  # cuDNN flash attention on GPU where eligible, XLA elsewhere
    c.data.source = "files"
    c.data.num_samples = 2000
    c.data.min_pixels = 3136
    c.data.max_pixels = 12845056
    c.rollout.group_size = 6
    c.rollout.max_tokens = 512
    c.rollout.response_multiple = 128
    c.train.batch_size = 20
    c.train.epochs = 5.0
    c.train.micro_batches = 5
    c.train.checkpoint_every = 50
    c.optim.learning_rate = 1e-6
    c.loss.kl_coef = 0.04  # VLM-R1's beta
    c.diversity.gamma = 0.7
    c.synthesis.server_config = "sdxl"
    # The data server's own GPU (4 GPUs train, the fifth synthesizes, as in the paper: launch the trainer with
    # CUDA_VISIBLE_DEVICES=0,1,2,3) and its model dirs.
    c.synthesis.server_visible_devices = "4"
    c.synthesis.server_overrides = ",".join([
        "device=cuda:0", "model.base_dir=~/models/stable-diffusion-xl-1.0-inpainting-0.1",
        "model.controlnet_dir=~/models/controlnet-inpaint-dreamer-sdxl", "model.vae_dir=~/models/sdxl-vae-fp16-fix"])
    return c


def vllm_settings() -> ml_collections.ConfigDict:
    """rollout.vllm: the vLLM worker (rollout.engine="vllm"), started as a subprocess on loopback or reached at
    `address`; see syngrpo_jax/rollout/vllm_engine.py."""
    return ml_collections.ConfigDict(dict(
        address="",  # tcp://host:port of a worker a launch script started; "" starts one here
        server_public_key="",  # that worker's CURVE public key (Z85 or its server.key file) when off loopback
        python="",  # the worker venv's python; "" -> <repo>/.venv-vllm/bin/python (built by `make setup`)
        dtype="float32",  # vLLM's weight dtype (float32 | bfloat16 | float16); pushes are cast to it here
        max_model_len=4096,  # prompt + response tokens per sequence
        kv_cache_gb=1.0,  # CPU: KV cache size in GiB
        gpu_memory_utilization=0.5,  # GPU: the share of the worker's GPU that vLLM may take
        tensor_parallel_size=1,  # GPUs of one worker
        visible_devices="",  # CUDA_VISIBLE_DEVICES of a local worker ("" inherits the trainer's)
        max_images=4,  # images per prompt
        weight_transfer="auto",  # auto (a /dev/shm file when the worker shares this host, else socket) | file | socket
        bucket_mb=256,  # socket pushes: bucket size (host memory bound while pushing)
        max_restarts=2,  # a local worker that dies is restarted this often, then the run stops naming it
        startup_timeout_s=600.0,
        request_timeout_s=1800.0,  # a generate or weight push taking longer counts as a dead worker
    ))


def base_config() -> ml_collections.ConfigDict:
    """Every field with its default; config files change what their setting needs."""
    c = ml_collections.ConfigDict()
    c.method = "syn_grpo"  # see methods.METHODS; set through methods.configure so dependent fields follow
    c.seed = 0  # every random choice of the run derives from (seed, step)
    _model_and_data(c)
    _rollout_train_and_loss(c)
    _rewards_synthesis_and_eval(c)
    return c


def _model_and_data(c: ml_collections.ConfigDict) -> None:
    c.model = ml_collections.ConfigDict()
    c.model.path = ""  # local HF checkpoint dir (config.json, safetensors, tokenizer.json); "" -> model.tiny
    c.model.tokenizer_path = ""  # defaults to model.path
    c.model.tiny = ml_collections.ConfigDict(dict(  # random tiny architecture (CPU demo, tests); used without a path
        vocab_size=768, hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=256,
        vision_hidden_size=64, vision_depth=2, vision_heads=2, vision_intermediate_size=128,
        fullatt_block_indexes=(1,), rope_theta=10000.0))
    c.model.dtype = "float32"  # parameter dtype: float32 | bfloat16
    c.model.compute_dtype = ml_collections.config_dict.placeholder(str)  # default: the parameter dtype
    c.model.attention_impl = "xla"  # xla | jax_nn | cudnn
    c.model.remat = "none"  # none | full | dots (rematerialise scanned layers in the backward pass)

    c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))  # -1: the remaining devices
    # Several JAX processes (hosts) in one run (docs/DESIGN.md, "Multi-process training"): a process silent for
    # heartbeat_timeout_s is lost and the others exit naming it; the run directory must be shared (checked at
    # start: process 0's file visible everywhere within shared_fs_timeout_s); the others wait for process 0's
    # pool changes (it alone talks to the data server, e.g. waiting in sync mode) up to host_sync_timeout_s.
    c.multiprocess = ml_collections.ConfigDict(dict(
        heartbeat_timeout_s=100, shutdown_timeout_s=300, shared_fs_timeout_s=60.0, host_sync_timeout_s=1800.0))

    c.data = ml_collections.ConfigDict()
    c.data.task = "rec"  # rec | ovd | isr | qa
    c.data.source = "engine"  # engine (procedural, generated into the workdir) | files
    c.data.train_path = ""  # files: REC jsonl / COCO json / QA jsonl
    c.data.image_root = ""  # files: image paths in the data are relative to this
    c.data.num_samples = 0  # train on the first N samples (0: all); the paper uses 2,000
    # engine: num, seed, size (px), difficulty (1-3; 0 draws it per sample); QA only: families (comma-separated
    # names of data.qa.FAMILIES; "" all), photo (photo-like variants), stratified (every family x difficulty alike);
    # rec/ovd only: min_objects/max_objects (object count range; 0, 0: the difficulty's), object_scale (sizes),
    # repainted (share of scenes on vocabulary backgrounds, as the procedural data server paints them)
    c.data.engine = ml_collections.ConfigDict(dict(num=64, seed=0, size=112, difficulty=0, families="", photo=False,
                                                   stratified=False, min_objects=0, max_objects=0, object_scale=1.0,
                                                   repainted=0.0))
    c.data.min_pixels = 56 * 56  # image resizing for the model (Qwen2.5-VL smart_resize bounds)
    c.data.max_pixels = 12845056
    c.data.sampling = "uniform"  # uniform (epochs without replacement) | difficulty (pass-rate aware)
    # Synthesized image files kept on disk per sample. 0: every version (galleries across epochs; at the paper's
    # setting about 10k SDXL images per run). K > 0: the last K, plus every version of the gallery's tracked
    # samples and the images the kept checkpoints resume from.
    c.data.keep_versions = 0
    # Adaptive difficulty (QA; data/adaptive.py): each step `per_step` fresh engine samples join the pool, each
    # family's at the difficulty whose pass-rate EMA (momentum; unrefreshed levels relax towards the target at
    # `relax` per step) is nearest `target`; beyond `max_fresh` fresh samples the oldest retire, so the pool holds
    # at most num_samples + max_fresh. Per-family, per-difficulty accuracy is logged (qa/<family>/d<k>/...).
    c.data.adaptive = ml_collections.ConfigDict(dict(enabled=False, target=0.5, momentum=0.8, relax=0.02,
                                                     per_step=4, max_fresh=64))


def _rollout_train_and_loss(c: ml_collections.ConfigDict) -> None:
    c.rollout = ml_collections.ConfigDict()
    c.rollout.engine = "jax"  # jax (native sampler) | vllm (a vLLM worker process, settings in rollout.vllm)
    c.rollout.group_size = 6  # G responses per prompt
    c.rollout.temperature = 1.0
    c.rollout.top_p = 1.0
    c.rollout.top_k = 0
    c.rollout.max_tokens = 256
    c.rollout.prompt_multiple = 64  # prompt lengths are padded to multiples of this (bounded recompiles)
    c.rollout.response_multiple = 0  # responses are padded to multiples of this in the update; 0: max_tokens
    c.rollout.vllm = vllm_settings()  # rollout.engine="vllm"
    # overlap: the engine samples step t+1's batch while step t updates (one update off-policy; the ratio's
    # old_logp is then the older weights', which the clip and loss.tis_cap account for). See trainer/overlap.py.
    c.rollout.overlap = False
    c.rollout.max_staleness = 1  # a step sampled with weights more updates old than this is an error

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 20  # prompts per step
    c.train.epochs = 5.0  # total steps = epochs * num_samples / batch_size, unless train.steps is set
    c.train.steps = 0
    c.train.micro_batches = 1  # gradient accumulation (must divide batch_size)
    # The GRPO ratio's denominator: rollout (the engine's log-probs: pi / pi_rollout) | recompute (the trainer's at
    # the update's starting parameters; the update's own forward, no extra cost; needed by loss.tis_cap).
    c.train.old_logp = "rollout"
    c.train.log_every = 10  # a log line (rewards, loss, step time) every N steps; 0: none (metrics: every step)
    c.train.checkpoint_every = 50
    c.train.keep_checkpoints = 3
    c.train.eval_every = 0  # 0: only at the end
    c.train.track_samples = 4  # samples whose synthesized images the gallery follows

    c.optim = ml_collections.ConfigDict(dict(
        learning_rate=1e-6, schedule="constant", warmup_steps=0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
        max_grad_norm=1.0, frozen=()))  # frozen: ("vision",) to train the text decoder only

    c.loss = ml_collections.ConfigDict(dict(
        clip_low=0.2, clip_high=0.2, dual_clip=None, agg="token-mean", norm_constant=None, kl_coef=0.0,
        kl_estimator="k3", kl_straight_through=False, entropy_coef=0.0, entropy_adv_alpha=None,
        entropy_adv_kappa=2.0, cov_mode=None, clip_cov_ratio=2e-4, clip_cov_lb=1.0, clip_cov_ub=5.0,
        kl_cov_ratio=2e-3, kl_cov_coef=1.0, tis_cap=None, logprob_chunk=128))
    c.loss.dual_clip = ml_collections.config_dict.placeholder(float)
    c.loss.norm_constant = ml_collections.config_dict.placeholder(float)
    c.loss.entropy_adv_alpha = ml_collections.config_dict.placeholder(float)
    c.loss.cov_mode = ml_collections.config_dict.placeholder(str)
    # Truncated importance sampling for the rollout/trainer mismatch: each token's surrogate weighted by
    # min(pi_train / pi_rollout, tis_cap) (e.g. 2.0); needs train.old_logp="recompute". None: off.
    c.loss.tis_cap = ml_collections.config_dict.placeholder(float)


def _rewards_synthesis_and_eval(c: ml_collections.ConfigDict) -> None:
    c.reward = ml_collections.ConfigDict()
    c.reward.response_format = "syn_grpo"  # set by the method: grpo | syn_grpo | syn_grpo_no_div
    c.reward.accuracy = "task"  # task (labels: IoU / mAP / exact match) | majority (MM-UPT, labels never read)
    c.reward.diversity = True  # R_div = 1 - |v - V~(q)| from the <score> tag
    c.reward.strict_qa = False  # QA answers only as <answer>\boxed{...}</answer>

    c.diversity = ml_collections.ConfigDict(dict(gamma=0.7))  # smoothing EMA of the batch diversity

    c.synthesis = ml_collections.ConfigDict()
    c.synthesis.enabled = True
    c.synthesis.mode = "async"  # async (never waits) | sync (waits for each batch's jobs)
    c.synthesis.descriptions = "policy"  # policy (argmax R_div) | random (one of the group) | file (fixed)
    c.synthesis.descriptions_file = ""  # for "file": JSON {sample_id: [descriptions]} or a list for all
    c.synthesis.address = ""  # tcp://host:port of a running data server; "" starts a local one
    c.synthesis.server_config = "procedural"  # configs/synth.py argument for the local server
    # Overrides of the local server's config (configs/synth.py fields), "key=value,key=value", e.g.
    # "device=cuda:4,model.base_dir=/models/sdxl-inpaint"; passed as --config.<key>=<value>.
    c.synthesis.server_overrides = ""
    # CUDA_VISIBLE_DEVICES of the local server ("" inherits the trainer's): its own GPU, outside the trainer's set.
    c.synthesis.server_visible_devices = ""
    c.synthesis.server_public_key = ""  # CURVE public key file of a remote server
    c.synthesis.max_in_flight = 64
    c.synthesis.timeout_s = 120.0
    c.synthesis.sync_timeout_s = 300.0
    # A lost data server: a local one that exited, or any server silent this long (a remote one keeps being
    # reconnected to meanwhile). A local one is restarted up to max_restarts times; past that, on_server_lost:
    # "stop" (a checkpoint, then an error naming the server) | "continue" (train on without synthesis).
    c.synthesis.server_lost_after_s = 60.0
    c.synthesis.max_restarts = 2
    c.synthesis.on_server_lost = "stop"

    # answer_weight: loss weight of the target's <answer> tokens relative to the rest; query_only_steps: the first
    # steps' prompts are the sample's query alone (a curriculum; see sft's module docstring); num_samples: the
    # warm start draws from the first N samples of the data source, ignoring data.num_samples (0: the run's samples);
    # restart_every: the optimizer starts again from fresh moments every N steps (0: never)
    c.sft = ml_collections.ConfigDict(dict(steps=0, batch_size=8, learning_rate=1e-4, warmup_steps=0,
                                           answer_weight=1.0, query_only_steps=0, num_samples=0, restart_every=0))

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 16
    c.eval.max_tokens = 256
    c.eval.num_samples = 0  # 0: all
    # Named splits, each: task, source ("files" | "engine"), path + image_root (files), engine settings (engine).
    c.eval.splits = ml_collections.ConfigDict()
