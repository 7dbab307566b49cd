"""The SFT loss: answer-token weights land exactly on <answer>...; the weighted mean is the weighted mean."""
import numpy as np
import pytest
from flax import nnx

from configs import tiny_cpu
from syngrpo_jax import policy, sft
from syngrpo_jax.data.prompts import build_target
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
