"""Command line of the vLLM rollout worker (see the package docstring). Binds loopback unless told otherwise;
any other address needs --curve_secret_key_file. The admin token for `shutdown` comes from $SYNGRPO_ROLLOUT_ADMIN_TOKEN."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import zmq

from syngrpo_jax.protocol import endpoints
from syngrpo_jax.protocol import rollout as proto
from syngrpo_jax.rollout.vllm_worker.server import RolloutWorker, WeightSpec, checkpoint_tensors

ADMIN_TOKEN_ENV, PARENT_PID_ENV = proto.ADMIN_TOKEN_ENV, proto.PARENT_PID_ENV


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m syngrpo_jax.rollout.vllm_worker", description=__doc__)
    p.add_argument("--model", required=True, help="HF checkpoint directory (config.json, safetensors, tokenizer)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--max_model_len", type=int, default=4096, help="prompt + response tokens")
    p.add_argument("--kv_cache_gb", type=float, default=1.0, help="CPU: KV cache size in GiB")
    p.add_argument("--gpu_memory_utilization", type=float, default=0.5, help="GPU: share of its memory for vLLM")
    p.add_argument("--tensor_parallel_size", type=int, default=1)
    p.add_argument("--min_pixels", type=int, default=56 * 56, help="the run's data.min_pixels")
    p.add_argument("--max_pixels", type=int, default=12845056, help="the run's data.max_pixels")
    p.add_argument("--max_images", type=int, default=4, help="images per prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_enforce_eager", action="store_true", help="allow CUDA graphs / torch.compile (GPU)")
    p.add_argument("--bind_address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (see --ready_file)")
    p.add_argument("--curve_secret_key_file", default=None, help="server .key_secret; required off loopback")
    p.add_argument("--curve_authorized_clients_dir", default=None, help="only these client keys may connect")
    p.add_argument("--max_message_mb", type=int, default=1024, help="largest message (a weight bucket)")
    p.add_argument("--staging_dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                   help="where weight files are staged (default /dev/shm: memory, no disk)")
    p.add_argument("--ready_file", default=None, help="write {endpoint, pid} as JSON here once serving")
    return p.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    args = parse_args(argv)
    endpoints.exit_with_parent(PARENT_PID_ENV)
    keys = endpoints.load_server_keys(args.curve_secret_key_file)
    try:
        endpoints.check_bind(args.bind_address, keys, how_to="pass --curve_secret_key_file=KEYS/server.key_secret")
    except endpoints.BindRefused as e:
        logging.error("%s", e)
        sys.exit(2)
    from syngrpo_jax.rollout.vllm_worker.llm import EngineSettings, VllmHost

    host = VllmHost(EngineSettings(
        model=args.model, dtype=args.dtype, max_model_len=args.max_model_len, kv_cache_gb=args.kv_cache_gb,
        gpu_memory_utilization=args.gpu_memory_utilization, tensor_parallel_size=args.tensor_parallel_size,
        min_pixels=args.min_pixels, max_pixels=args.max_pixels, max_images=args.max_images, seed=args.seed,
        enforce_eager=not args.no_enforce_eager))
    config = json.loads((Path(args.model) / "config.json").read_text())
    spec = WeightSpec(checkpoint_tensors(args.model), bool(config.get("tie_word_embeddings", False)))
    limits = proto.Limits(max_message_bytes=args.max_message_mb << 20, max_images=args.max_images)
    staging_dir = args.staging_dir or tempfile.gettempdir()
    worker = RolloutWorker(host, spec, limits=limits, staging_dir=staging_dir,
                           admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None, model_name=args.model)
    ctx = zmq.Context()
    sock, endpoint, auth = endpoints.bind_router(ctx, args.bind_address, args.port, keys,
                                                 authorized_clients_dir=args.curve_authorized_clients_dir,
                                                 max_message_bytes=limits.max_message_bytes, rcvhwm=8)
    logging.info("rollout worker for %s listening on %s%s", args.model, endpoint, " with CURVE" if keys else "")
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    if args.ready_file:
        endpoints.write_ready_file(args.ready_file, {"endpoint": endpoint, "pid": os.getpid(),
                                                     "staging_dir": worker.staging_dir})
    try:
        worker.serve(sock, should_stop=lambda: bool(stopping))
    finally:
        sock.close(linger=0)
        if auth is not None:
            auth.stop()
        ctx.term()
    logging.info("rollout worker stopped")
    os._exit(0)  # vLLM's engine threads need no orderly teardown; the process owns nothing else


if __name__ == "__main__":
    main()
