"""One process of the two-process test of rollout/process_zero (test_process_zero.py starts two): process 0's
engine is a scripted stand-in for a vLLM worker; every process samples through the wrapper, pushes sharded
weights, and writes what it saw to OUT/worker_<i>.json."""
import json
import os
import sys

import numpy as np

from syngrpo_jax.parallel import distributed


def main(out: str) -> None:
    distributed.initialize(heartbeat_timeout_s=60, shutdown_timeout_s=60)
    import jax
    import ml_dtypes
    from jax.sharding import NamedSharding, PartitionSpec

    from syngrpo_jax.parallel import host_arrays, multihost
    from syngrpo_jax.rollout.base import RolloutEngine, RolloutRequest, SamplingParams
    from test_process_zero import scripted_responses

    class Scripted(RolloutEngine):
        built = 0

        def __init__(self):
            Scripted.built += 1
            self.pushed = []

        def generate(self, requests, params):
            return scripted_responses(len(requests), params.n, version=len(self.pushed))

        def update_weights(self, params, version):
            self.pushed.append((params, version))

        @property
        def weight_version(self):
            return len(self.pushed)

        def step_metrics(self):
            return {"rollout/scripted": 1.0}

    from syngrpo_jax.rollout.process_zero import ProcessZeroEngine

    engine = ProcessZeroEngine(Scripted, host_dtype=ml_dtypes.bfloat16)
    me = multihost.process_index()
    mesh = jax.make_mesh((jax.device_count(),), ("x",))
    weights = {"a": np.arange(16, dtype=np.float32).reshape(8, 2), "b": {"c": np.full((3,), 0.5, np.float32)}}
    params = host_arrays.to_global(weights, {"a": NamedSharding(mesh, PartitionSpec("x")),
                                             "b": {"c": NamedSharding(mesh, PartitionSpec())}})
    engine.update_weights(params, 7)
    got = engine.generate([RolloutRequest(np.arange(3))] * 3, SamplingParams(n=2, max_tokens=4))
    expected = scripted_responses(3, 2, version=1)
    seen = {
        "built": Scripted.built, "version": engine.weight_version, "metrics": engine.step_metrics(),
        "same_responses": all(a.text == b.text and a.finish_reason == b.finish_reason
                              and a.weight_version == b.weight_version
                              and np.array_equal(a.token_ids, b.token_ids) and a.token_ids.dtype == np.int32
                              and np.array_equal(a.logprobs, b.logprobs)
                              for ga, gb in zip(got, expected, strict=True) for a, b in zip(ga, gb, strict=True)),
    }
    if me == 0:
        (pushed, version), = engine.inner.pushed
        seen["pushed_version"] = version
        seen["pushed_dtype"] = str(pushed["a"].dtype)
        seen["pushed_ok"] = (np.array_equal(pushed["a"].astype(np.float32), weights["a"])
                             and np.array_equal(pushed["b"]["c"].astype(np.float32), weights["b"]["c"]))
    else:
        seen["inner"] = engine.inner is None
    with open(os.path.join(out, f"worker_{me}.json"), "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(sys.argv[1])
