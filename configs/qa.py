r"""Data-engine QA with verifiable \boxed{} answers: grid shapes, cubes, bar and pie charts, Sudoku-style grids,
function graphs and Euclidean geometry (syngrpo_jax/data/qa; a page of examples: docs/engine_gallery.png).

    python -m syngrpo_jax.train --config=configs/qa.py:model=qwen2_5_vl_3b --workdir=$RUN \
        --config.model.path=/models/Qwen2.5-VL-3B-Instruct

The data-engine training setting: KL 0, temperature 1.0, only `<answer>\boxed{...}</answer>` counts as an
answer (strict), difficulty-stratified data (every family at every difficulty equally often, photo-like
variants) drawn by the pool's pass-rate-aware sampler (`data.sampling = "difficulty"`). The engine generates the
training set (num_samples, seeded) and held-out evaluation sets (clean and photo-like) into the workdir; accuracy
is reported per family and difficulty.

Arguments: model, method, num_samples, gamma, families ("+"-separated, e.g. cubes+sudoku; "" all), and the setting's knobs with
their data-engine values: kl=0.0, temperature=1.0, strict=True, sampling=difficulty, stratified=True, photo=True.
The previous behaviour of this file is `kl=0.04,strict=false,sampling=uniform,stratified=false,photo=false`
(the REC setting's KL, lenient answers, uniform epochs, difficulty drawn per sample, clean images).
"""
from syngrpo_jax import methods, run_config


def get_config(arg=None):
    a = run_config.parse_arg(arg, model="qwen2_5_vl_3b", method="syn_grpo", num_samples=2000, gamma=0.7,
                             families="", kl=0.0, temperature=1.0, strict=True, sampling="difficulty",
                             stratified=True, photo=True)
    c = run_config.paper_setting(run_config.base_config(), a.model)
    c.data.task = "qa"
    c.data.source = "engine"
    c.data.engine.num = a.num_samples
    c.data.engine.size = 448
    c.data.engine.difficulty = 0  # 1-3: cycled through (stratified) or drawn per sample
    c.data.engine.families = a.families
    c.data.engine.stratified = a.stratified
    c.data.engine.photo = a.photo
    c.data.num_samples = a.num_samples
    c.data.sampling = a.sampling
    c.loss.kl_coef = a.kl
    c.rollout.temperature = a.temperature
    c.diversity.gamma = a.gamma
    c.reward.strict_qa = a.strict
    test = dict(task="qa", source="engine", num=504, seed=1, size=448, difficulty=0, families=a.families,
                stratified=True)  # 504 = 24 per family and difficulty of all seven families
    c.eval.splits.qa_test = dict(test)
    if a.photo:
        c.eval.splits.qa_test_photo = dict(test, seed=2, photo=True)
    methods.configure(c, a.method)
    return c
