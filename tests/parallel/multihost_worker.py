"""One process of the two-process test of parallel/multihost, shared_dir and host_arrays (test_multihost.py
starts two): it exercises each helper against the other process and writes what it saw to OUT/worker_<i>.json;
with `loop`, it only keeps talking to the other process until it is killed."""
import json
import os
import sys

from syngrpo_jax.parallel import distributed


def main(out: str) -> None:
    distributed.initialize(heartbeat_timeout_s=60, shutdown_timeout_s=60)
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    from syngrpo_jax.parallel import host_arrays, multihost, shared_dir

    me, seen = multihost.process_index(), {}
    payloads = {"empty": b"", "small": bytes(range(256)) * 4, "large": os.urandom(200_000)}
    if me == 0:
        with open(os.path.join(out, "payloads.bin"), "wb") as f:
            f.write(payloads["large"])
    multihost.barrier("payload-written")
    with open(os.path.join(out, "payloads.bin"), "rb") as f:
        payloads["large"] = f.read()  # process 0's random bytes, so both know what to expect
    for name, payload in payloads.items():
        got = multihost.broadcast_bytes(payload if me == 0 else None)
        seen[f"broadcast_{name}"] = got == payload
    multihost.barrier("all-read")
    multihost.broadcast_bytes(b"last" if me == 0 else None)
    if me == 0:  # earlier broadcasts were read by everyone, so their keys are gone
        keys = [k for k, _ in multihost._client().key_value_dir_get("syngrpo/broadcast/")]
        seen["broadcast_keys"] = sorted({k.split("/")[2] for k in keys})
    seen["gather"] = [g.decode() for g in multihost.gather_bytes(f"from {me}".encode())]
    seen["any_one"] = multihost.any_process(me == 1)
    seen["any_none"] = multihost.any_process(False)

    order = os.path.join(out, "order.txt")
    with multihost.primary_first("order"):
        with open(order, "a") as f:
            f.write(str(me))
    multihost.barrier("order-done")
    with open(order) as f:
        seen["order"] = f.read()

    shared_dir.check_shared(os.path.join(out, "run"), timeout_s=10)
    seen["token_left"] = [n for n in os.listdir(os.path.join(out, "run")) if n.startswith(".shared")]

    mesh = jax.make_mesh((jax.device_count(),), ("x",))
    host = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    arr = host_arrays.to_global(host, NamedSharding(mesh, PartitionSpec("x")))
    seen["local_rows"] = sorted(int(s.data[0, 0]) // 3 for s in arr.addressable_shards)
    seen["sum"] = float(jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(arr))
    seen["to_host"] = host_arrays.to_host(arr * 2).tolist() == (host * 2).tolist()
    with open(os.path.join(out, f"worker_{me}.json"), "w") as f:
        json.dump(seen, f)


def loop(out: str) -> None:
    """Agree on a flag every 50 ms until killed (the test kills one process and watches the other)."""
    distributed.initialize(heartbeat_timeout_s=60, shutdown_timeout_s=10)
    import time

    from syngrpo_jax.parallel import multihost

    multihost.any_process(False)
    open(os.path.join(out, f"ready_{multihost.process_index()}"), "w").close()
    while not multihost.any_process(False):
        time.sleep(0.05)


if __name__ == "__main__":
    (loop if sys.argv[2:] == ["loop"] else main)(sys.argv[1])
