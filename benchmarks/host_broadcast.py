"""Process 0's bytes to every process: the JAX runtime's key-value store vs a device collective.

    python benchmarks/host_broadcast.py                    # 2 CPU processes x 2 devices (gloo), about 1 minute
    python benchmarks/host_broadcast.py --sizes=10e3,1e6 --repeats=3

A multi-process run broadcasts, each step, what process 0's HostState applied (sample ids, versions, synthesized
PNGs: tens of KB to a few MB each, up to a batch of them). Two ways, timed on the same payloads in the same
processes, interleaved:

  kv      process 0 writes the bytes into the coordination service's key-value store, the others block on the
          key (gRPC to process 0, which hosts the service)
  device  `jax.experimental.multihost_utils.broadcast_one_to_all`: the length, then the bytes as a uint8 array
          padded to a power of two (a compile per size bucket), summed over a global mesh by XLA's collectives
  broadcast_bytes   what the trainer uses (`syngrpo_jax.parallel.multihost`): the length and payloads up to
          64 KiB through the key-value store, larger payloads through the device collective

A round starts with a barrier; its time is the slowest process's (when every process holds the bytes). Reported:
median seconds per size and MB/s; the first device call per bucket (compilation) apart. Every received payload is
checked byte for byte. Results: benchmarks/results/host_broadcast.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _device_broadcast(payload: bytes | None) -> bytes:
    """The length, then the bytes, both through broadcast_one_to_all."""
    import numpy as np
    from jax.experimental import multihost_utils

    from syngrpo_jax.parallel import multihost

    n = int(multihost_utils.broadcast_one_to_all(np.int64(len(payload) if payload is not None else 0)))
    return multihost._device_bytes(payload, n)


_kv_calls = iter(range(1 << 30))


def _kv_broadcast(payload: bytes | None) -> bytes:
    """All of it through the key-value store (one key per call, deleted after a barrier)."""
    from syngrpo_jax.parallel import multihost

    client, key = multihost._client(), f"bench/kv/{next(_kv_calls)}"
    if payload is not None:
        client.key_value_set_bytes(key, payload)
        data = payload
    else:
        data = client.blocking_key_value_get_bytes(key, 600_000)
    multihost.barrier("bench-kv")
    if payload is not None:
        client.key_value_delete(key)
    return data


def worker(a) -> None:
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={a.devices}"
    import jax
    import numpy as np

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{a.port}", num_processes=a.processes,
                               process_id=a.process_id, coordinator_bind_address=f"127.0.0.1:{a.port}")
    sys.path.insert(0, REPO)
    from syngrpo_jax.parallel import multihost

    methods = {"kv": _kv_broadcast, "device": _device_broadcast, "broadcast_bytes": multihost.broadcast_bytes}
    rows = []
    for size in a.sizes:
        payload = np.random.default_rng(size).integers(0, 256, size, np.uint8).tobytes()
        times = {m: [] for m in methods}
        first = {}
        for r in range(a.repeats + 1):
            for name, fn in methods.items():
                multihost.barrier("bench")
                t0 = time.perf_counter()
                got = fn(payload if multihost.is_primary() else None)
                dt = time.perf_counter() - t0
                assert got == payload, f"{name}: wrong bytes at size {size}"
                slowest = float(np.max(multihost_process_allgather(dt)))
                if r == 0:
                    first[name] = slowest
                else:
                    times[name].append(slowest)
        rows.append({"bytes": size, "first_s": first,
                     "median_s": {m: statistics.median(t) for m, t in times.items()},
                     "seconds": times})
    if multihost.is_primary():
        with open(a.result, "w") as f:
            json.dump(rows, f)
    jax.distributed.shutdown()


def multihost_process_allgather(x):
    import numpy as np
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(np.float64(x))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1e4,1e5,1e6,8e6,32e6", help="payload sizes in bytes")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--devices", type=int, default=2, help="forced CPU devices per process")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "host_broadcast.json"))
    p.add_argument("--process_id", type=int, default=-1, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--result", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.sizes = [int(float(s)) for s in a.sizes.split(",")]
    if a.process_id >= 0:
        worker(a)
        return 0

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result_file = a.out + ".rows.tmp"
    load_before = harness.load_average()
    args = [f"--sizes={','.join(map(str, a.sizes))}", f"--repeats={a.repeats}", f"--processes={a.processes}",
            f"--devices={a.devices}", f"--port={port}", f"--result={result_file}"]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--process_id={i}", *args])
             for i in range(a.processes)]
    codes = [proc.wait(1800) for proc in procs]
    if any(codes):
        print(f"worker exit codes {codes}", file=sys.stderr)
        return 1
    with open(result_file) as f:
        rows = json.load(f)
    os.remove(result_file)
    result = {"benchmark": "host_broadcast", "command": harness.command_line(), "machine": harness.machine_info(),
              "processes": a.processes, "devices_per_process": a.devices, "repeats": a.repeats,
              "load_average_before": load_before, "load_average_after": harness.load_average(), "rows": rows}

    def mb_s(size, seconds):
        return f"{size / seconds / 1e6:.0f}" if seconds > 0 else "-"

    table = [[f"{r['bytes']:,}", f"{r['median_s']['kv'] * 1e3:.1f}", mb_s(r["bytes"], r["median_s"]["kv"]),
              f"{r['median_s']['device'] * 1e3:.1f}", mb_s(r["bytes"], r["median_s"]["device"]),
              f"{r['first_s']['device'] * 1e3:.0f}", f"{r['median_s']['device'] / r['median_s']['kv']:.2f}",
              f"{r['median_s']['broadcast_bytes'] * 1e3:.1f}"] for r in rows]
    markdown = (f"{a.processes} processes x {a.devices} CPU devices (gloo), median of {a.repeats}; load average "
                f"{load_before} before, {result['load_average_after']} after.\n\n" + harness.markdown_table(
                    ["bytes", "kv ms", "kv MB/s", "device ms", "device MB/s", "device first call ms",
                     "device / kv", "broadcast_bytes ms"], table))
    harness.write_results(a.out, result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
