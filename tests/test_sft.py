"""The SFT loss: answer-token weights land exactly on <answer>...; the weighted mean is the weighted mean."""
import json
import os

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from configs import tiny_cpu
from syngrpo_jax import policy, sft
from syngrpo_jax.data.prompts import REC_QUESTION, build_target
from syngrpo_jax.data.sources import load_samples
from syngrpo_jax.rollout.requests import prepare_request

FMT = "syn_grpo"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    c = tiny_cpu.get_config("scale=test")
    c.data.engine.num = 4
    samples = load_samples(c.data, str(root / "data"))
    pol = policy.load_policy(c.model, str(root), seed=0, corpus=policy.task_corpus(samples, FMT))
    prepared = [prepare_request(s, pol.tokenizer, FMT, min_pixels=c.data.min_pixels, max_pixels=c.data.max_pixels)
                for s in samples]
    return c, pol, prepared


def test_answer_weight_starts_at_the_answer_tag(run):
    _, pol, prepared = run
    tok = pol.tokenizer
    for p in prepared:
        target = build_target(p.sample, FMT, p.model_hw)
        ids, plain = sft.target_tokens(tok, target)
        assert ids.tolist() == tok.encode(target) + [tok.im_end_id] and (plain == 1).all()
        ids3, w = sft.target_tokens(tok, target, 3.0)
        assert ids3.tolist() == ids.tolist()
        first = int(np.argmax(w == 3.0))
        assert set(w[:first].tolist()) == {1.0} and set(w[first:].tolist()) == {3.0}
        head, tail = tok.decode(ids[:first].tolist()), tok.decode(ids[first:].tolist())
        assert tail.endswith("</answer><|im_end|>") and "<answer>" in tail[:len("</description><answer>")]
        assert head + tail == target + "<|im_end|>" and "<answer>" not in head


def test_weighted_nll_is_the_weighted_token_mean(run):
    """nll(w) * sum(w) splits into the answer part (times its weight) and the rest: the weights are applied per
    token, and answer_weight=1 is the plain token mean."""
    c, pol, prepared = run
    graphdef, state = nnx.split(pol.model)
    params = nnx.to_pure_dict(state)
    kw = dict(prompt_multiple=c.rollout.prompt_multiple, response_multiple=c.rollout.max_tokens)
    batch, plain = sft.sft_batch(pol.model.config, prepared, pol.tokenizer, FMT, **kw)
    _, weighted = sft.sft_batch(pol.model.config, prepared, pol.tokenizer, FMT, answer_weight=4.0, **kw)
    np.testing.assert_array_equal(plain, batch.response_mask)
    answer = (weighted == 4.0).astype(np.float32)
    rest = plain - answer
    assert answer.sum() > 0 and rest.sum() > 0

    def nll(w):
        return float(sft.nll(graphdef, params, batch, w))

    assert nll(plain) == pytest.approx(float(sft.nll(graphdef, params, batch)), rel=1e-6)
    total = nll(weighted) * weighted.sum()
    assert total == pytest.approx(4.0 * nll(answer) * answer.sum() + nll(rest) * rest.sum(), rel=1e-5)
    assert nll(weighted) != pytest.approx(nll(plain), rel=1e-4)


def fresh(state):
    """A copy of the model's parameters (the SFT step donates its inputs; the fixture's model keeps its own)."""
    return jax.tree.map(lambda x: x.copy(), nnx.to_pure_dict(state))


def test_query_only_steps_show_the_query_alone_then_the_full_prompt(run, monkeypatch):
    """sft.query_only_steps=2 of 3: the first two batches' prompts are the expressions alone (no question, no
    format instruction), the third's the full prompts; the targets are the full Syn-GRPO responses throughout."""
    c, pol, prepared = run
    c = c.copy_and_resolve_references()
    c.sft.query_only_steps = 2
    seen = []
    real = sft.sft_batch

    def spy(config, batch_prepared, tokenizer, fmt, **kw):
        seen.append([tokenizer.decode(p.request.prompt_ids.tolist()) for p in batch_prepared])
        return real(config, batch_prepared, tokenizer, fmt, **kw)

    monkeypatch.setattr(sft, "sft_batch", spy)
    graphdef, state = nnx.split(pol.model)
    samples = [p.sample for p in prepared]
    sft.warm_start(c, pol.model.config, graphdef, fresh(state), samples, pol.tokenizer, steps=3,
                   batch_size=2, learning_rate=1e-3)
    assert len(seen) == 3
    question = REC_QUESTION.split(":")[0]
    queries = {s.query for s in samples}
    for step, prompts in enumerate(seen):
        for text in prompts:
            assert any(q in text for q in queries), text
            assert (question in text) == (step == 2) and ("<description>" in text) == (step == 2), (step, text)


def test_warm_start_pool_is_the_first_sft_num_samples_of_the_source(tmp_path):
    c = tiny_cpu.get_config("scale=test")
    c.data.engine.num = 6
    c.data.num_samples = 2
    samples = load_samples(c.data, str(tmp_path))
    assert sft.warm_start_pool(c, samples, str(tmp_path)) is samples  # sft.num_samples=0: the run's own
    c.sft.num_samples = 5
    pool = sft.warm_start_pool(c, samples, str(tmp_path))
    assert [s.sample_id for s in pool[:2]] == [s.sample_id for s in samples] and len(pool) == 5
    assert len({s.sample_id for s in pool}) == 5


def test_restart_every_restarts_the_optimizer_without_warmup(run, monkeypatch):
    """sft.restart_every=2 over 5 steps: fresh optimizer state at steps 0 (with the warmup), 2 and 4 (without)."""
    c, pol, prepared = run
    c = c.copy_and_resolve_references()
    c.sft.restart_every = 2
    inits = []
    real = sft.make_optimizer

    def spy(**kw):
        tx = real(**kw)
        return optax.GradientTransformation(lambda p: (inits.append(kw["warmup_steps"]), tx.init(p))[1], tx.update)

    monkeypatch.setattr(sft, "make_optimizer", spy)
    graphdef, state = nnx.split(pol.model)
    _, losses = sft.warm_start(c, pol.model.config, graphdef, fresh(state), [p.sample for p in prepared],
                               pol.tokenizer, steps=5, batch_size=2, learning_rate=1e-3, warmup_steps=3)
    assert inits == [3, 0, 0] and len(losses) == 5 and np.isfinite(losses).all()


def test_the_exported_warm_start_trains_on_the_trainer_s_pool(tmp_path):
    """`python -m syngrpo_jax.sft` warms up on the same pool as the trainer (sft.num_samples of the source, not the
    run's data.num_samples) and writes an HF model directory with its recipe."""
    c = tiny_cpu.get_config("scale=test")
    c.data.engine.num = 6
    c.data.num_samples = 2
    c.sft.num_samples = 5
    c.sft.steps = 2
    out = sft.export_warm_start(c, str(tmp_path / "warm"))
    with open(os.path.join(out, "warm_start.json")) as f:
        recipe = json.load(f)
    assert recipe["num_samples"] == 5 and len(recipe["loss"]) == 2 and np.isfinite(recipe["loss"]).all()
    assert {"config.json", "tokenizer.json"} <= set(os.listdir(out))
    assert any(name.endswith(".safetensors") for name in os.listdir(out))
