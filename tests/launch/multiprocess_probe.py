"""Stands in for the trainer under launch/local_multiprocess.sh (MODULE=multiprocess_probe): joins the JAX job
the script wires up, as the trainer does (parallel/distributed.py), and writes what it sees to
WORKDIR/probe_<process>.json: process index and count, local and global devices, and a sum over a global array
that every process fed its own rows of (so it needs the collectives to work)."""
import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from syngrpo_jax.parallel import distributed


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--workdir", required=True)
    p.add_argument("--fail_process", type=int, default=-1, help="this process exits 3 instead of joining ...")
    p.add_argument("--fail_after_s", type=float, default=0.0, help="... after this long (the others wait for it)")
    a = p.parse_args()
    if int(os.environ["JAX_PROCESS_ID"]) == a.fail_process:
        time.sleep(a.fail_after_s)
        return 3
    distributed.initialize()
    mesh = jax.make_mesh((jax.device_count(),), ("x",))
    local = np.full((jax.local_device_count(),), jax.process_index() + 1.0, np.float32)
    rows = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("x")), local)
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(rows)
    out = dict(process_index=jax.process_index(), process_count=jax.process_count(),
               local_devices=jax.local_device_count(), devices=jax.device_count(), total=float(total),
               config=a.config)
    with open(os.path.join(a.workdir, f"probe_{jax.process_index()}.json"), "w") as f:
        json.dump(out, f)
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
