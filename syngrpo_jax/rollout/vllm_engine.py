"""The vLLM rollout engine (rollout.engine="vllm"): a `RolloutEngine` whose samples come from a vLLM worker.

The worker (`rollout.vllm_worker`, in its own venv) is started as a subprocess on loopback by default, or reached
at `rollout.vllm.address` (a worker a launch script started; CURVE when it is off this host). This side never
imports torch or vLLM.

Requests: a `RolloutRequest` holds prompt ids with each image's placeholder run expanded and the processed pixels
(what the JAX sampler and the update take, unchanged). The worker wants ONE placeholder per image plus the image,
and runs vLLM's own processor on it. So each run is collapsed to one placeholder, and each image is rebuilt from
its pixels (`processing.image.pixels_to_image`: exact) and sent as PNG; the worker's processor (transformers' PIL
one) maps it back to the same pixels bit for bit, and the worker reports each prompt's expanded length, which
must equal the request's: the update then scores exactly the ids and pixels the worker sampled from.

Weights: `update_weights` streams the policy's parameters in HF checkpoint names and layout
(`hf_checkpoint.iter_hf_tensors`: one tensor gathered at a time) either into a file in the worker's staging
directory (/dev/shm, when the worker shares this host: no socket copy) or in bounded buckets over the socket.

Failures: a worker that dies (or stops answering) is restarted up to `rollout.vllm.max_restarts` times, gets the
last pushed weights again, and the request is retried; past that, or for a worker at an address, `WorkerError`
names it.
"""
from __future__ import annotations

import io
import logging
import os
import socket
import time
import uuid
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from syngrpo_jax.models.hf_checkpoint import iter_hf_tensors
from syngrpo_jax.processing.image import num_image_tokens, pixels_to_image
from syngrpo_jax.rollout import weight_push
from syngrpo_jax.rollout.base import Response, RolloutEngine, RolloutRequest, SamplingParams
from syngrpo_jax.rollout.vllm_client import WorkerClient, WorkerError, WorkerReplyError, launch_worker

log = logging.getLogger(__name__)
TRANSFERS = ("auto", "file", "socket")


def worker_prompt(request: RolloutRequest, image_token_id: int, merge_size: int = 2) -> tuple[list[int], list[bytes]]:
    """(ids with each image's placeholder run collapsed to one token, PNG bytes of each image)."""
    ids = np.asarray(request.prompt_ids).tolist()
    grids = [] if request.image_grid_thw is None else np.asarray(request.image_grid_thw).reshape(-1, 3).tolist()
    out, runs, k = [], [], 0
    while k < len(ids):
        if ids[k] == image_token_id:
            start = k
            while k < len(ids) and ids[k] == image_token_id:
                k += 1
            runs.append(k - start)
            out.append(image_token_id)
        else:
            out.append(ids[k])
            k += 1
    expected = [num_image_tokens(g, merge_size) for g in grids]
    if runs != expected:
        raise ValueError(f"request {request.request_id!r}: image placeholder runs {runs} do not match its "
                         f"image_grid_thw {grids} (expected runs {expected})")
    images, row = [], 0
    for grid in grids:
        patches = int(np.prod(grid))
        pixels = pixels_to_image(np.asarray(request.pixel_values[row:row + patches]), grid)
        row += patches
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
        images.append(buffer.getvalue())
    return out, images


def prompt_seed(seed: int, index: int) -> int:
    """A prompt's own sampling seed: its responses do not depend on what else is in the batch."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class VllmEngine(RolloutEngine):
    """Samples through a vLLM worker. `connect()` returns a connected `WorkerClient` (a fresh worker when
    `restartable`: called again after a failure, at most `max_restarts` times)."""

    def __init__(self, model_config, connect: Callable[[], WorkerClient], *, restartable: bool = True,
                 max_restarts: int = 2, push_dtype: str = "float32", transfer: str = "auto",
                 bucket_bytes: int = 256 << 20, request_timeout_s: float = 1800.0):
        if transfer not in TRANSFERS:
            raise ValueError(f"rollout.vllm.weight_transfer={transfer!r}: choose one of {TRANSFERS}")
        self.config, self._connect = model_config, connect
        self.restartable, self.max_restarts, self.restarts = restartable, int(max_restarts), 0
        self.push_dtype, self.transfer, self.bucket_bytes = push_dtype, transfer, int(bucket_bytes)
        self.request_timeout_s = float(request_timeout_s)
        self._version = 0
        self._last_push = None  # (params, version) a restarted worker gets again (the trainer's arrays, no copy)
        self.last_sync: dict = {}
        self.client = connect()
        self._info = self.client.call("ping", timeout_s=30.0)[0]

    @property
    def weight_version(self) -> int:
        return self._version

    def close(self) -> None:
        if self.client is not None:
            self.client.stop()
            self.client = None

    # ---- requests with restarts -------------------------------------------------------------------------------

    def _call(self, op: str, frames=(), *, timeout_s: float | None = None, **fields):
        try:
            return self.client.call(op, frames, timeout_s=timeout_s or self.request_timeout_s, **fields)
        except WorkerError as e:
            self._restart(e)
            return self.client.call(op, frames, timeout_s=timeout_s or self.request_timeout_s, **fields)

    def _restart(self, cause: WorkerError) -> None:
        if not self.restartable:
            raise cause
        if self.restarts >= self.max_restarts:
            raise WorkerError(f"{cause}\nGiving up: the rollout worker was already restarted {self.restarts} times "
                              f"(rollout.vllm.max_restarts={self.max_restarts})") from cause
        self.restarts += 1
        log.warning("rollout worker failed (%s); restart %d of %d", str(cause).splitlines()[0], self.restarts,
                    self.max_restarts)
        old, self.client = self.client, None
        if old.process is not None:
            old.process.kill()
        old.stop()
        self.client = self._connect()
        self._info = self.client.call("ping", timeout_s=30.0)[0]
        if self._last_push is not None:
            self._push(*self._last_push)

    # ---- generate ---------------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Response]]:
        if not requests:
            return []
        prompts, frames = [], []
        for i, request in enumerate(requests):
            ids, images = worker_prompt(request, self.config.image_token_id, self.config.vision.spatial_merge_size)
            prompts.append({"ids": ids, "images": len(images), "seed": prompt_seed(params.seed, i)})
            frames += images
        sampling = {"n": params.n, "temperature": float(params.temperature), "top_p": float(params.top_p),
                    "top_k": params.top_k, "max_tokens": params.max_tokens,
                    "stop_token_ids": list(params.stop_token_ids), "seed": int(params.seed)}
        reply, _ = self._call("generate", frames, params=sampling, prompts=prompts)
        for i, (request, got) in enumerate(zip(requests, reply["prompt_lens"])):
            if got != len(request.prompt_ids):
                raise WorkerError(f"{self.client.describe()} expanded prompt {i} ({request.request_id!r}) to {got} "
                                  f"tokens, the trainer's has {len(request.prompt_ids)}: its image bounds differ "
                                  "from data.min_pixels / max_pixels")
        version = int(reply["weight_version"])
        return [[Response(np.asarray(r["ids"], np.int32), r["text"], np.asarray(r["logprobs"], np.float32),
                          r["finish"], version) for r in group] for group in reply["results"]]

    # ---- weights ----------------------------------------------------------------------------------------------

    def update_weights(self, params, version: int) -> None:
        self._last_push = (params, int(version))
        try:
            self._push(params, int(version))
        except WorkerError as e:
            self._restart(e)  # the fresh worker gets these weights
        self._version = int(version)

    def _same_host(self) -> bool:
        return self.client.process is not None or self._info.get("host") == socket.gethostname()

    def _push(self, params, version: int) -> None:
        started = time.perf_counter()
        tensors = iter_hf_tensors(self.config, params, dtype=self.push_dtype)
        path = "socket"
        if self.transfer == "file" or (self.transfer == "auto" and self._same_host()):
            try:
                nbytes, worker_s = self._push_file(tensors, version)
                path = "file"
            except (OSError, WorkerReplyError) as e:
                if self.transfer == "file":
                    raise
                log.warning("weight push through a file failed (%s); using the socket from now on", e)
                self.transfer = "socket"
                tensors = iter_hf_tensors(self.config, params, dtype=self.push_dtype)
        if path == "socket":
            nbytes, worker_s = self._push_socket(tensors, version)
        seconds = time.perf_counter() - started
        # worker_s: the worker loading them into vLLM (inside `seconds`, which spans gather, send and load)
        self.last_sync = {"path": path, "bytes": nbytes, "seconds": seconds, "worker_s": worker_s, "version": version}
        log.info("weights v%d pushed via %s: %.1f MB in %.3f s", version, path, nbytes / 1e6, seconds)

    def _push_file(self, tensors, version: int) -> tuple[int, float]:
        directory = self._info["staging_dir"]
        path = os.path.join(directory, f"syngrpo-weights-{uuid.uuid4().hex}.bin")
        try:
            table, nbytes = weight_push.write_file(path, tensors)
            reply, _ = self.client.call("weights_file", timeout_s=self.request_timeout_s, version=version,
                                        path=path, tensors=[e.to_wire() for e in table])
        finally:
            if os.path.exists(path):
                os.unlink(path)
        return nbytes, float(reply["load_s"])

    def _push_socket(self, tensors, version: int) -> tuple[int, float]:
        update, count, nbytes = uuid.uuid4().hex, 0, 0
        for table, data in weight_push.buckets(tensors, self.bucket_bytes):
            self.client.call("weights_bucket", [data], timeout_s=self.request_timeout_s, update=update,
                             index=count, tensors=[e.to_wire() for e in table])
            count, nbytes = count + 1, nbytes + len(data)
        reply, _ = self.client.call("weights_commit", timeout_s=self.request_timeout_s, update=update,
                                    version=version, buckets=count)
        return nbytes, float(reply["load_s"])


def check_settings(v) -> None:
    """rollout.vllm values that would fail later, refused now with the field and value named."""
    checks = [
        ("dtype", v.dtype, v.dtype in ("float32", "bfloat16", "float16"), "choose float32, bfloat16 or float16"),
        ("weight_transfer", v.weight_transfer, v.weight_transfer in TRANSFERS, f"choose one of {TRANSFERS}"),
        ("address", v.address, not v.address or v.address.startswith("tcp://"), "must be tcp://host:port or empty"),
        ("max_model_len", v.max_model_len, v.max_model_len >= 16, "must be >= 16"),
        ("bucket_mb", v.bucket_mb, v.bucket_mb >= 1, "must be >= 1"),
        ("max_restarts", v.max_restarts, v.max_restarts >= 0, "must be >= 0"),
        ("max_images", v.max_images, v.max_images >= 1, "must be >= 1"),
    ]
    for field, value, ok, why in checks:
        if not ok:
            raise ValueError(f"rollout.vllm.{field}={value!r}: {why}")


def engine_from_config(model_config, model_dir: str, config, workdir: str = "") -> VllmEngine:
    """The engine that `config.rollout.vllm` describes (a subprocess worker, or the one at its address)."""
    v = config.rollout.vllm
    check_settings(v)
    if v.address:
        connect = lambda: WorkerClient(v.address, server_public_key=v.server_public_key or None)  # noqa: E731
    else:
        args = {"dtype": v.dtype, "max_model_len": v.max_model_len, "kv_cache_gb": v.kv_cache_gb,
                "gpu_memory_utilization": v.gpu_memory_utilization, "tensor_parallel_size": v.tensor_parallel_size,
                "min_pixels": config.data.min_pixels, "max_pixels": config.data.max_pixels,
                "max_images": v.max_images, "seed": config.seed}
        log_path = os.path.join(workdir, "logs", "vllm_worker.log") if workdir else None
        env = {"CUDA_VISIBLE_DEVICES": v.visible_devices} if v.visible_devices else {}
        connect = lambda: launch_worker(model_dir, python=v.python, args=args, log_path=log_path,  # noqa: E731
                                        startup_timeout_s=v.startup_timeout_s, extra_env=env)
    return VllmEngine(model_config, connect, restartable=not v.address, max_restarts=v.max_restarts,
                      push_dtype=v.dtype, transfer=v.weight_transfer,
                      bucket_bytes=int(v.bucket_mb) << 20, request_timeout_s=v.request_timeout_s)


def from_context(context) -> VllmEngine:
    """The registry's factory (rollout.engine="vllm")."""
    return engine_from_config(context.model.config, context.model_dir, context.config, context.workdir)
