r"""The embedded default: Syn-GRPO end to end on a 2-core CPU in minutes, no weights or data to download.

    python -m syngrpo_jax.train --config=configs/tiny_cpu.py --workdir=workdirs/demo
    python -m syngrpo_jax.train --config=configs/tiny_cpu.py:method=grpo --workdir=workdirs/demo_grpo
    python -m syngrpo_jax.train --config=configs/tiny_cpu.py:task=qa --workdir=workdirs/demo_qa

A tiny Qwen2.5-VL-architecture model and tokenizer are built on the fly; REC data comes from the procedural engine
(shape scenes with referring expressions); a supervised warm start teaches the response format, then Syn-GRPO
trains while the procedural data server (a subprocess) rewrites backgrounds from the policy's descriptions.
Arguments: method=<name> (any of syngrpo_jax.methods.METHODS), steps=<int> (RL steps; default: 100 for the REC
demo, else 40), sft_steps=<int> (default: the scale's), scale=demo|test (test: a smaller model, 8 samples and
short responses, for the test suite), sync (wait for synthesis), gamma, num_samples (the RL pool; default: 256 for
the REC demo, else 64; the sweeps of configs/sweeps.py), task=rec|qa (qa: the data engine's QA families with strict
\boxed{} answers, KL 0 and adaptive difficulty: fresh samples at the level each family passes about half the time).
"""
from syngrpo_jax import methods, run_config


def get_config(arg=None):
    a = run_config.parse_arg(arg, method="syn_grpo", steps=0, sft_steps=-1, scale="demo", sync=False, gamma=0.7,
                             num_samples=0, task="rec")
    c = run_config.base_config()
    c.seed = 0

    c.data.task = "rec"
    c.data.source = "engine"
    c.data.engine.num = a.num_samples or 64
    c.diversity.gamma = a.gamma
    c.data.engine.size = 112
    c.data.engine.difficulty = 1  # attribute expressions over a few objects
    c.data.min_pixels = c.data.max_pixels = 112 * 112  # 8x8 patches -> 16 image tokens

    c.rollout.group_size = 4
    c.rollout.max_tokens = 96  # a full syn_grpo response is ~75 tokens with the tiny tokenizer
    c.rollout.temperature = 1.0
    c.rollout.prompt_multiple = 32

    c.train.batch_size = 8
    c.train.steps = a.steps or 40
    c.train.checkpoint_every = 20
    c.train.track_samples = 4

    c.optim.learning_rate = 2e-5
    c.optim.warmup_steps = 0
    c.sft.steps = a.sft_steps if a.sft_steps >= 0 else 300
    c.sft.batch_size = 8
    c.sft.learning_rate = 1e-3
    c.sft.warmup_steps = 20

    c.synthesis.mode = "async"
    c.synthesis.server_config = "procedural"
    c.synthesis.server_overrides = "nice=10"  # the server shares this machine's CPUs: let training go first

    c.eval.batch_size = 16
    c.eval.max_tokens = 96
    c.eval.splits.rec_val = dict(task="rec", source="engine", num=32, seed=1, size=112, difficulty=1)

    if a.sync:
        c.synthesis.mode = "sync"
    if a.scale == "test":
        c.model.tiny.update(hidden_size=32, num_layers=2, intermediate_size=64, vision_hidden_size=32,
                            vision_intermediate_size=64)
        c.data.engine.num = 8
        c.data.engine.size = 64
        c.data.min_pixels = c.data.max_pixels = 56 * 56
        c.rollout.group_size = 2
        c.rollout.max_tokens = 24
        c.train.batch_size = 4
        c.train.checkpoint_every = 1
        c.sft.batch_size = 4
        c.eval.max_tokens = 24
        c.eval.splits.rec_val.update(num=4, size=64)
    elif a.scale == "demo":
        if a.task == "rec":
            _grounding_recipe(c, a.sft_steps)
            c.data.num_samples = a.num_samples or 256  # the RL pool: the first ones of the warm start's
            c.train.steps = a.steps or 100
            c.train.eval_every = 20  # the curve of held-out Acc@0.5, not just its ends (about 10 s each)
    else:
        raise ValueError(f"config argument scale={a.scale!r}: choose demo or test")
    if a.task == "qa":
        _qa_task(c, test=a.scale == "test")
    elif a.task != "rec":
        raise ValueError(f"config argument task={a.task!r}: choose rec or qa")
    methods.configure(c, a.method)
    return c


def _grounding_recipe(c, sft_steps: int) -> None:
    """What makes the tiny model localise within the demo's CPU budget, and keeps it working on its own synthesized
    images (measured: README, "What the demo shows"): one large object per scene, half of them repainted on the
    vocabulary's backgrounds (data.engine.repainted: the kind of image Syn-GRPO's data server paints, which a warm
    start on plain scenes alone fails on), a small text rope base for the 4x4 grid of image tokens, and a warm start
    on 1,024 scenes (RL cycles through the first data.num_samples ones, so synthesized images come back) of batch
    16 whose first 1,200 steps show the expression alone as the prompt (sft.query_only_steps: the model learns to
    localise there, at a third of the cost per step), then 600 with the full prompt, AdamW restarted every 150
    steps; the answer weighs 4x in its loss. RL samples at temperature 0.7 (at 1.0 it gained less: README).
    Two eval splits of 200 held-out scenes: rec_val on the engine's own backgrounds, rec_repainted the same scenes
    on vocabulary backgrounds."""
    scenes = dict(min_objects=1, max_objects=1, object_scale=1.8)
    c.data.engine.update(scenes, num=1024, repainted=0.5)
    c.sft.num_samples = 1024
    c.model.tiny.rope_theta = 1.0
    c.sft.steps = sft_steps if sft_steps >= 0 else 1800
    c.sft.query_only_steps = 1200
    c.sft.restart_every = 150
    c.sft.batch_size = 16
    c.sft.answer_weight = 4.0
    c.eval.splits.rec_val.update(num=200, **scenes)
    c.eval.splits.rec_repainted = dict(c.eval.splits.rec_val.to_dict(), repainted=1.0)
    c.rollout.temperature = 0.7


def _qa_task(c, test: bool) -> None:
    """QA from the data engine (every family, stratified over difficulty) with adaptive difficulty on."""
    c.data.task = "qa"
    c.data.engine.difficulty = 0  # stratified: every family at every difficulty
    c.data.engine.stratified = True
    c.data.sampling = "difficulty"
    c.data.adaptive.enabled = True
    c.data.adaptive.per_step = 2 if test else 4
    c.data.adaptive.max_fresh = 8 if test else 32
    c.reward.strict_qa = True
    c.loss.kl_coef = 0.0
    c.train.track_samples = 2 if test else 4
    size = c.data.engine.size
    del c.eval.splits["rec_val"]
    c.eval.splits.qa_val = dict(task="qa", source="engine", num=7 if test else 28, seed=1, size=size, difficulty=0,
                                stratified=True)
