"""The trainer's phases one at a time, with fake engines and sessions: no trainer, no data server, no loop.

Rewards and advantages are checked against formulas written here; the update against a direct call of the train
step on the same batch."""
import importlib.util
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from syngrpo_jax.data.sources import load_samples
from syngrpo_jax.grpo import train_step as ts
from syngrpo_jax.grpo.batch import build_train_batch
from syngrpo_jax.policy import load_policy, task_corpus
from syngrpo_jax.rewards.group_rewards import GroupRewards
from syngrpo_jax.rollout.base import Response, RolloutEngine, SamplingParams
from syngrpo_jax.run_dir import RunDir
from syngrpo_jax.trainer import phases
from syngrpo_jax.trainer.chrono import Chrono
from syngrpo_jax.trainer.host_state import HostState
from syngrpo_jax.trainer.learner import Learner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(arg=""):
    spec = importlib.util.spec_from_file_location("tiny_cpu", os.path.join(REPO, "configs", "tiny_cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(f"scale=test,sft_steps=0,{arg}".rstrip(","))


def answer(box, score=0.5, description="a beach"):
    return (f"<think>x</think><score>{score}</score><description>{description}</description>"
            f"<answer>{json.dumps({'bbox_2d': box})}</answer>")


class FakeEngine(RolloutEngine):
    """Answers with scripted texts (a list per call, cycled over requests) and records what it was asked."""

    def __init__(self, texts, token_ids):
        self.texts, self.token_ids, self.calls, self.pushed = texts, token_ids, [], []
        self._version = 0

    def generate(self, requests, params):
        self.calls.append((len(requests), params))
        return [[Response(np.asarray(self.token_ids[g], np.int32), self.texts[b % len(self.texts)][g],
                          np.full(len(self.token_ids[g]), -1.5, np.float32), "stop", self._version)
                 for g in range(params.n)] for b in range(len(requests))]

    def update_weights(self, params, version):
        self.pushed.append(version)
        self._version = version

    @property
    def weight_version(self):
        return self._version

    def step_metrics(self):
        return {"rollout/fake": 1.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("phases")
    config = tiny_config("method=syn_grpo")
    run = RunDir(str(root))
    samples = load_samples(config.data, run.data)
    policy = load_policy(config.model, run.root, seed=0, corpus=task_corpus(samples, config.reward.response_format))
    return dict(config=config, run=run, samples=samples, policy=policy)


def fresh_host(setup):
    return HostState.build(setup["config"], setup["samples"], setup["run"])


def fake_engine(setup, boxes_per_prompt):
    """G = 2 responses per prompt: each batch row answers with the given boxes (in model pixels)."""
    tok = setup["policy"].tokenizer
    texts = [[answer(b, score=s, description=d) for b, s, d in zip(boxes, (0.2, 0.9), ("snow", "desert"))]
             for boxes in boxes_per_prompt]
    token_ids = [tok.encode("<answer>a</answer>") + [tok.im_end_id], tok.encode("b") + [tok.im_end_id]]
    return FakeEngine(texts, token_ids)


def sampling(setup):
    return SamplingParams(n=setup["config"].rollout.group_size, max_tokens=8)


def test_chrono_times_named_phases():
    now = [0.0]
    chrono = Chrono(("a", "b"), clock=lambda: now[0])
    chrono.start_step()
    with chrono("a"):
        now[0] += 2.0
    now[0] += 1.0  # outside any phase: only in time/step
    with chrono("a"):
        now[0] += 0.5
    assert chrono.metrics() == {"time/a": 2.5, "time/b": 0.0, "time/step": 3.5}
    chrono.start_step()
    assert chrono.metrics()["time/a"] == 0.0
    with pytest.raises(KeyError, match="unknown phase 'c'"):
        with chrono("c"):
            pass
    with pytest.raises(ValueError, match="distinct"):
        Chrono(("a", "a"))


def test_rollout_draws_through_the_pool_and_seeds_by_step(setup):
    host = fresh_host(setup)
    engine = fake_engine(setup, [[[0, 0, 10, 10], [0, 0, 20, 20]]])
    batch = host.pool.next_batch(setup["config"].train.batch_size)
    result = phases.rollout(engine, batch, sampling(setup), tokenizer=setup["policy"].tokenizer,
                            config=setup["config"], step=5)
    assert [p.sample.sample_id for p in result.prepared] == [s.sample_id for s in batch]
    assert len(result.responses) == len(batch) and all(len(g) == 2 for g in result.responses)
    assert result.metrics == {"rollout/fake": 1.0}
    n, params = engine.calls[0]
    assert n == len(batch) and params.seed == phases.step_seed(setup["config"].seed, 5, phases.SALT_ROLLOUT)
    phases.rollout(engine, batch, sampling(setup), tokenizer=setup["policy"].tokenizer, config=setup["config"],
                   step=6)
    assert engine.calls[1][1].seed != params.seed  # a new stream every step
    prompt = setup["policy"].tokenizer.decode(result.prepared[0].request.prompt_ids)
    assert "<score>" in prompt and "<description>" in prompt  # the method's response format


def test_score_rewards_advantages_and_pass_rates(setup):
    config, host = setup["config"], fresh_host(setup)
    batch = host.pool.next_batch(config.train.batch_size)
    prep = phases.rollout(fake_engine(setup, [[[0, 0, 1, 1], [0, 0, 1, 1]]]), batch, sampling(setup),
                          tokenizer=setup["policy"].tokenizer, config=config, step=0).prepared
    gt = [p.sample.boxes[0] * np.array([p.model_hw[1] / p.image_hw[1], p.model_hw[0] / p.image_hw[0]] * 2)
          for p in prep]
    # Response 0 hits the box exactly, response 1 misses it: accuracy 1 and 0 in every group.
    result = phases.rollout(FakeEngine([[answer(g.tolist(), 0.2, "snow"), answer([0, 0, 1, 1], 0.9, "desert")]
                                        for g in gt], [[1, 2], [3]]),
                            batch, sampling(setup), tokenizer=setup["policy"].tokenizer, config=config, step=0)
    scored = phases.score(result, config, host, step=0)
    acc = scored.rewards.accuracy
    np.testing.assert_allclose(acc[:, 0], 1.0, atol=1e-6)
    assert np.all(acc[:, 1] == 0.0)
    total = scored.rewards.total
    mean, std = total.mean(axis=1, keepdims=True), total.std(axis=1, ddof=1, keepdims=True)  # sample std
    np.testing.assert_allclose(scored.advantages, ((total - mean) / (std + 1e-6)).reshape(-1), rtol=1e-4, atol=1e-4)
    # V(q) = var([1, 0]) / 0.25 = 1 everywhere; the first step's smoothed V equals it; R_div = 1 - |v - 1|.
    np.testing.assert_allclose(scored.rewards.diversity, [[0.2, 0.9]] * len(batch), atol=1e-6)
    assert host.smoother.state_dict()["steps"] == 1
    for p in result.prepared:
        assert host.pool.pass_rate(p.sample.sample_id) == pytest.approx(0.5)


def _rewards(descriptions, diversity):
    b, g = np.asarray(diversity).shape
    zeros = np.zeros((b, g))
    return GroupRewards(zeros, zeros, np.asarray(diversity, float), zeros, np.zeros(b), np.zeros(b), zeros,
                        descriptions)


def test_synthesis_jobs_per_description_source(setup):
    config = setup["config"]
    host = fresh_host(setup)
    result = phases.rollout(fake_engine(setup, [[[0, 0, 5, 5], [0, 0, 6, 6]]]),
                            host.pool.next_batch(3), sampling(setup), tokenizer=setup["policy"].tokenizer,
                            config=config, step=0)
    ids = [p.sample.sample_id for p in result.prepared]
    rewards = _rewards([["a", "b"], ["c", None], [None, ""]], [[0.1, 0.7], [0.9, 0.95], [0.5, 0.5]])
    jobs = phases.synthesis_jobs(result.prepared, rewards, descriptions="policy", fixed=None, seed=0, step=4)
    # argmax R_div among responses with a description; a group without any gets no job.
    assert [(sid, d) for sid, d, _ in jobs] == [(ids[0], "b"), (ids[1], "c")]
    assert [s for _, _, s in jobs] == [phases.step_seed(0, 4, phases.SALT_SYNTHESIS_JOBS + b) % 2**31 for b in (0, 1)]
    again = phases.synthesis_jobs(result.prepared, rewards, descriptions="random", fixed=None, seed=0, step=4)
    assert again == phases.synthesis_jobs(result.prepared, rewards, descriptions="random", fixed=None, seed=0,
                                          step=4)  # a function of (seed, step)
    assert [sid for sid, _, _ in again] == ids[:2] and again[1][1] == "c"
    fixed = {ids[0]: ["x", "y"], ids[2]: ["z"]}
    jobs = phases.synthesis_jobs(result.prepared, rewards, descriptions="file", fixed=fixed, seed=0, step=4)
    assert [sid for sid, _, _ in jobs] == [ids[0], ids[2]] and jobs[0][1] in ("x", "y") and jobs[1][1] == "z"
    jobs = phases.synthesis_jobs(result.prepared, rewards, descriptions="file", fixed=["only"], seed=0, step=4)
    assert [d for _, d, _ in jobs] == ["only"] * 3


class FakeSession:
    def __init__(self):
        self.submitted, self.waited = [], []

    def submit(self, requests, step):
        self.submitted.append((list(requests), step))
        return [f"job{i}" for i in range(len(requests))]

    def wait(self, ids, step):
        self.waited.append((ids, step))
        return 0.0


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_synthesize_submits_and_waits_only_in_sync_mode(setup, mode):
    config = tiny_config(f"method=syn_grpo{',sync' if mode == 'sync' else ''}")
    host = fresh_host(setup)
    result = phases.rollout(fake_engine(setup, [[[0, 0, 5, 5], [0, 0, 6, 6]]]), host.pool.next_batch(2),
                            sampling(setup), tokenizer=setup["policy"].tokenizer, config=config, step=0)
    scored = phases.Scored(_rewards([["a", "b"], ["c", "d"]], [[0.1, 0.7], [0.9, 0.2]]), np.zeros(4))
    chrono = Chrono(("synthesis", "waiting"))
    chrono.start_step()
    assert phases.synthesize(host, result, scored, config, 3, chrono) == []  # no session: nothing to do
    host.session = FakeSession()
    ids = phases.synthesize(host, result, scored, config, 3, chrono)
    assert ids == ["job0", "job1"] and [d for _, d, _ in host.session.submitted[0][0]] == ["b", "c"]
    assert host.session.waited == ([(ids, 3)] if mode == "sync" else [])


def test_push_weights_and_step_metrics(setup):
    engine = fake_engine(setup, [[[0, 0, 5, 5], [0, 0, 6, 6]]])
    phases.push_weights(engine, {"w": 1}, 7)
    assert engine.pushed == [7] and engine.weight_version == 7
    host = fresh_host(setup)
    result = phases.RolloutResult([], [], {"rollout/fake": 2.0})
    rewards = _rewards([["a", "b"]], [[0.5, 0.25]])
    rewards.pred_score[:] = np.nan
    metrics = phases.step_metrics(result, phases.Scored(rewards, np.zeros(2)), {"token_entropy": 1.5, "loss": 0.1},
                                  host, lr=1e-3, use_diversity=False, times={"time/step": 1.0})
    assert metrics["entropy"] == 1.5 and "token_entropy" not in metrics and metrics["loss"] == 0.1
    assert metrics["reward/diversity"] == pytest.approx(0.375) and metrics["rollout/fake"] == 2.0
    assert "diversity/V_global" not in metrics and "diversity/pred_score" not in metrics  # None values dropped
    assert metrics["pool/synthesized_samples"] == 0 and metrics["time/step"] == 1.0 and metrics["lr"] == 1e-3


def test_host_state_round_trip(setup, tmp_path):
    host = fresh_host(setup)
    host.pool.next_batch(3)
    host.smoother(np.asarray([0.5, 0.25]))
    state = json.loads(json.dumps(host.state_dict()))
    other = fresh_host(setup)
    other.load_state_dict(state)
    assert other.state_dict() == state and other.pool.step == 1
    assert other.receive(0) == 0 and other.metrics() == {"pool/synthesized_samples": 0}
    config = tiny_config("method=grpo_offline_generation")
    assert HostState.build(config, setup["samples"], setup["run"]).fixed_descriptions  # the file is read once


def test_learner_update_equals_the_train_step(setup):
    config, policy = setup["config"], setup["policy"]
    host = fresh_host(setup)
    engine = fake_engine(setup, [[[0, 0, 5, 5], [0, 0, 6, 6]]])
    result = phases.rollout(engine, host.pool.next_batch(config.train.batch_size), sampling(setup),
                            tokenizer=policy.tokenizer, config=config, step=0)
    advantages = np.asarray([1.0, -1.0] * config.train.batch_size, np.float32)
    learner = Learner(config, policy.model, steps=2)
    before = jax.tree.map(np.asarray, learner.params)
    metrics = learner.update(result, advantages, 0, pad_id=policy.tokenizer.pad_id)
    assert np.isfinite(metrics["loss"]) and "token_entropy" in metrics and metrics["grad_norm"] > 0

    # The same step by hand: the batch the learner builds, the train step, the update key of step 0.
    graphdef = nnx.graphdef(policy.model)
    params, tx = before, learner.tx
    batch = build_train_batch(policy.model.config, [p.request for p in result.prepared],
                              [[r.token_ids for r in g] for g in result.responses], advantages,
                              old_logp=[[r.logprobs for r in g] for g in result.responses],
                              pad_id=policy.tokenizer.pad_id, prompt_multiple=config.rollout.prompt_multiple,
                              response_multiple=config.rollout.max_tokens, max_response_len=config.rollout.max_tokens)
    step = ts.make_train_step(graphdef, tx, ts.LossConfig.from_config(config))
    want, _, _ = step(params, tx.init(params), None, batch, jax.random.key(
        phases.step_seed(config.seed, 0, phases.SALT_UPDATE) % 2**31))
    for got, expected in zip(jax.tree.leaves(learner.params), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)
    assert any(not np.array_equal(np.asarray(g), o) for g, o in zip(jax.tree.leaves(learner.params),
                                                                     jax.tree.leaves(before)))
