"""rollout/process_zero: an external engine driven by process 0 of a multi-process run; its responses reach every
process intact, and every process takes part in gathering the weights process 0 pushes."""
import json
import os
import sys

import numpy as np

from multiprocess import Job
from syngrpo_jax.rollout.base import Response
from syngrpo_jax.rollout.process_zero import decode_responses, encode_responses

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "process_zero_worker.py")


def scripted_responses(b, n, version):
    """[b][n] responses of different lengths (one empty), with unicode text and both finish reasons."""
    rng = np.random.default_rng(b * 100 + n)
    return [[Response(rng.integers(0, 1000, k).astype(np.int32), f"réponse {i}/{j} <answer>[1, 2]</answer>",
                      rng.normal(size=k).astype(np.float32), "stop" if j % 2 else "length", version)
             for j, k in enumerate((i + j) % 5 for j in range(n))] for i in range(b)]


def test_responses_round_trip():
    groups = scripted_responses(4, 3, version=5)
    back = decode_responses(encode_responses(groups))
    assert [len(g) for g in back] == [3] * 4
    for ga, gb in zip(groups, back, strict=True):
        for a, b in zip(ga, gb, strict=True):
            assert (a.text, a.finish_reason, a.weight_version) == (b.text, b.finish_reason, b.weight_version)
            np.testing.assert_array_equal(a.token_ids, b.token_ids)
            np.testing.assert_array_equal(a.logprobs, b.logprobs)
            assert b.token_ids.dtype == np.int32 and b.logprobs.dtype == np.float32
    assert decode_responses(encode_responses([])) == []


def test_two_processes_share_process_zeros_engine(tmp_path):
    tests_dir = os.path.dirname(os.path.dirname(WORKER))  # the worker imports this module and its helpers
    job = Job(lambda i: [sys.executable, WORKER, str(tmp_path)], log_dir=tmp_path / "logs",
              extra_path=[os.path.dirname(WORKER), tests_dir])
    assert job.wait(600) == [0, 0], job.tails()
    p0, p1 = (json.loads((tmp_path / f"worker_{i}.json").read_text()) for i in (0, 1))
    assert p0["built"] == 1 and p1["built"] == 0 and p1["inner"]  # one engine, on process 0
    assert p0["same_responses"] and p1["same_responses"]
    assert p0["version"] == p1["version"] == 7
    assert p0["metrics"] == {"rollout/scripted": 1.0} and p1["metrics"] == {}
    assert p0["pushed_version"] == 7 and p0["pushed_dtype"] == "bfloat16" and p0["pushed_ok"]
