r"""The data server: a ZeroMQ ROUTER front end, a bounded job queue, and one worker thread that owns the device.

    python -m synth_torch.server --config=configs/synth.py:procedural [--config.port=0 --ready_file=/tmp/r.json]

Threads: the router thread (synth_torch.router) parses, validates, admits and answers -- it never waits on the
backend, and every check it runs on a message is bounded (synth_torch.image_check); the worker thread
(synth_torch.worker) builds the backend, runs batches and hands replies back over an inproc socket. Memory is
bounded by bytes per client and in total (synth_torch.admission); jobs of clients that disconnect are dropped
unrun (synth_torch.peers). Protocol: syngrpo_jax.protocol.synthesis. This module: lifecycle and the command line.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import uuid

import zmq

from syngrpo_jax.protocol import curve_keys, endpoints
from syngrpo_jax.protocol.endpoints import BindRefused  # re-exported: the server raises it
from syngrpo_jax.protocol import synthesis as proto
from synth_torch.admission import AdminGate, Ledger, check_memory_config
from synth_torch.job_queue import JobQueue
from synth_torch.peers import Peers
from synth_torch.pipeline import Job
from synth_torch.router import Router
from synth_torch.stats import ServerStats
from synth_torch.worker import Worker

log = logging.getLogger("synth_torch.server")

ADMIN_TOKEN_ENV = "SYNGRPO_SYNTH_ADMIN_TOKEN"
PARENT_PID_ENV = "SYNGRPO_SYNTH_PARENT_PID"  # set by a launcher whose death should stop this server


def limits_from_config(limits_cfg) -> proto.Limits:
    return proto.Limits(**{f: int(limits_cfg[f]) for f in proto.Limits.__dataclass_fields__ if f in limits_cfg})


def server_curve_keys(config) -> tuple[bytes, bytes] | None:
    """(public, secret) from the config, or None when CURVE is not configured."""
    c = config.curve
    if c.server_secret_key_file:
        return curve_keys.load_secret_keypair(c.server_secret_key_file)
    if c.server_public_key or c.server_secret_key:
        if not (c.server_public_key and c.server_secret_key):
            raise ValueError("config.curve needs both server_public_key and server_secret_key (Z85), or a key file")
        return c.server_public_key.encode(), c.server_secret_key.encode()
    return None


def check_bind(config) -> tuple[bytes, bytes] | None:
    """Refuses a non-loopback bind without CURVE keys; returns the keys (or None on plain loopback)."""
    keys = server_curve_keys(config)
    endpoints.check_bind(config.bind_address, keys,
                         how_to="set config.curve.server_secret_key_file=KEYS/server.key_secret")
    return keys


class SynthServer:
    """The data server. In-process use (tests, benchmarks):

        server = SynthServer(config).start()   # builds the backend, binds, serves on background threads
        server.endpoint                         # "tcp://127.0.0.1:PORT"
        server.stop()

    `backend` / `segmenter` may be passed in instead of being built from the config (tests inject slow ones).
    """

    def __init__(self, config, *, backend=None, segmenter=None):
        self.config = config
        self.limits = limits_from_config(config.limits)
        check_memory_config(config.memory, self.limits)
        self._curve = check_bind(config)  # fail fast, before any model loads
        self.admin_token = config.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
        self.queue: JobQueue[Job] = JobQueue(int(config.queue_size))
        self.ledger = Ledger.from_config(config.memory)
        self._stats = ServerStats()
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        inproc = f"inproc://synth-results-{uuid.uuid4().hex}"
        self._pull = self._ctx.socket(zmq.PULL)
        self._pull.bind(inproc)
        self.worker = Worker(config, self.limits, self.queue, self._stats, self._ctx, inproc, backend=backend,
                             segmenter=segmenter)
        self.router: Router | None = None
        self._auth = None
        self._sock = self._peers = None
        self._threads: list[threading.Thread] = []
        self.endpoint: str | None = None
        self.started = time.time()

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def _load_and_bind(self, load_timeout_s: float | None) -> None:
        worker = threading.Thread(target=self.worker.run, args=(self._stop,), name="synth-worker", daemon=True)
        worker.start()
        self._threads.append(worker)
        if not self.worker.ready.wait(load_timeout_s):
            raise TimeoutError(f"backend {self.config.backend!r} did not load within {load_timeout_s} s")
        if self.worker.load_error is not None:
            self.close()
            raise self.worker.load_error
        self._bind()
        self.router = Router(
            sock=self._sock, peers=self._peers, pull=self._pull, queue=self.queue, ledger=self.ledger,
            stats=self._stats, limits=self.limits, admin_token=self.admin_token,
            admin_gate=AdminGate(float(self.config.admin_retry_s)), stop=self._stop, describe=self.stats,
            backend=self.config.backend)

    def _bind(self) -> None:
        cfg = self.config
        sock, self.endpoint, self._auth = endpoints.bind_router(
            self._ctx, cfg.bind_address, int(cfg.port), self._curve,
            authorized_clients_dir=cfg.curve.authorized_clients_dir, max_message_bytes=self.limits.max_message_bytes,
            rcvhwm=int(cfg.memory.request_hwm),  # requests zmq holds per connection until the router reads them
            sndhwm=int(cfg.memory.reply_hwm),  # replies zmq holds per connection; the rest wait, counted
            router_mandatory=True,  # a full pipe is EAGAIN (kept and retried), a departed peer EHOSTUNREACH
            before_bind=self._watch_peers)  # before bind: every connection's ACCEPTED event is seen
        self._sock = sock
        log.info("synth server (%s) listening on %s%s", cfg.backend, self.endpoint,
                 " with CURVE" if self._curve else "")

    def _watch_peers(self, sock: zmq.Socket) -> None:
        self._peers = Peers(sock)

    def start(self, load_timeout_s: float | None = None) -> "SynthServer":
        """Loads the backend, binds, and serves on a background thread."""
        self._load_and_bind(load_timeout_s)
        router = threading.Thread(target=self._serve, name="synth-router", daemon=True)
        router.start()
        self._threads.append(router)
        return self

    def serve_forever(self, ready_file: str | None = None) -> None:
        """Loads, binds and serves on the calling thread until `stop()` or an authenticated `shutdown`."""
        self._load_and_bind(None)
        if ready_file:
            endpoints.write_ready_file(
                ready_file, {"endpoint": self.endpoint, "pid": os.getpid(), "backend": self.config.backend})
        self._serve()

    def _serve(self) -> None:
        """The router thread: serve, then answer queued jobs `shutting_down` and forward the worker's last."""
        try:
            self.router.run()
        finally:
            self.router.answer_queued()
            for t in self._threads:
                if t.name == "synth-worker":
                    t.join(30.0)
            self.router.finish()
            log.info("synth server stopped: %s", self._stats.snapshot()["counts"])

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout_s)
        self.close()

    def close(self) -> None:
        self._stop.set()
        self.queue.close()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._peers is not None:
            self._peers.close()
            self._peers = None
        for s in (self._sock, self._pull):
            if s is not None and not s.closed:
                s.close()
        if all(not t.is_alive() for t in self._threads):
            self._ctx.term()  # a worker still inside the backend keeps its socket; terminating would hang

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- introspection ---------------------------------------------------------------------------------------

    def stats(self) -> dict:
        snap = self._stats.snapshot()
        counts = snap["counts"]
        return {
            "protocol_version": proto.PROTOCOL_VERSION,
            "queue_depth": len(self.queue), "queue_capacity": self.queue.capacity,
            "in_progress": self.worker.in_progress, "batch_size": self.worker.batch_size,
            "done": counts.get("done", 0), "failed": counts.get("failed", 0),
            "overloaded": counts.get("overloaded", 0), "rejected": counts.get("rejected", 0),
            "counts": counts, "timings": snap["timings"], "mean_batch_size": snap["mean_batch_size"],
            "memory": self.ledger.snapshot(), "connections": self._peers.connections if self._peers else 0,
            "backend": _plain(self.worker.identity), "uptime_s": time.time() - self.started, "pid": os.getpid(),
            "curve": self._curve is not None,
        }


def _plain(obj):
    """Only msgpack-safe values in stats."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _lower_priority(nice) -> None:
    """Raises this process's niceness by `nice` (0-19), so a server sharing CPUs with a trainer yields to it."""
    if not (isinstance(nice, int) and not isinstance(nice, bool) and 0 <= nice <= 19):
        log.error("config.nice=%r must be an integer from 0 to 19", nice)
        sys.exit(2)
    if nice:
        os.nice(nice)


def main(argv) -> None:
    from absl import flags

    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    endpoints.exit_with_parent(PARENT_PID_ENV)
    config = flags.FLAGS.config
    _lower_priority(config.get("nice", 0))
    try:
        server = SynthServer(config)
    except (BindRefused, ValueError) as e:  # a refused bind, or a config that names its bad field
        log.error("%s", e)
        sys.exit(2)

    def on_signal(signum, frame):
        log.info("signal %d: stopping", signum)
        server._stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve_forever(ready_file=flags.FLAGS.ready_file)
    server.close()


def _define_flags():
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "configs/synth.py[:procedural|sdxl]", lock_config=True)
    flags.DEFINE_string("ready_file", None, "write {endpoint, pid} as JSON here once bound (for launchers)")
    flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
