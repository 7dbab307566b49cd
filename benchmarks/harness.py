"""What every benchmark script needs: machine facts, a timer, and result files.

    import harness  # from a script in benchmarks/ (python puts the script's folder on sys.path)
    t = harness.interleaved({"ours": f, "theirs": g}, warmup=1, repeats=5)  # seconds and contention per call
    harness.summary(t.seconds["ours"], t.others_cpu["ours"])               # median, min, quiet median...
    harness.write_results("benchmarks/results/x.json", result, markdown)   # x.json + x.md

Timings are wall clock. The development machines are shared, so `interleaved` alternates the contenders
round by round (a load change hits them alike) and records, for every call, how much CPU other processes used
meanwhile; `summary` gives the median over all calls and over the quiet ones, and `machine_info` records the
load average. Pass `sync` to block on asynchronous results (jax arrays, CUDA) before the clock stops.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import threading
import time
from importlib import metadata
from typing import Callable, NamedTuple


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_info() -> dict:
    """Platform, CPU count, library versions and the accelerators jax and torch see (those already imported or
    importable; importing jax here would start its backend, which every caller of this module wants anyway)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in ("numpy", "jax", "jaxlib", "flax", "torch", "transformers")},
        "load_average": load_average(),
    }
    try:
        import jax

        devices = jax.devices()
        info["jax_backend"] = jax.default_backend()
        info["jax_devices"] = [f"{d.platform}:{d.device_kind}" for d in devices]
    except ImportError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def wait_for_quiet(max_load: float, timeout_s: float = 0.0, poll_s: float = 15.0) -> list[float] | None:
    """Wait (up to timeout_s) until the 1-minute load average drops below max_load; returns the last reading."""
    deadline = time.monotonic() + timeout_s
    load = load_average()
    while load is not None and load[0] >= max_load and time.monotonic() < deadline:
        time.sleep(poll_s)
        load = load_average()
    return load


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class Timings(NamedTuple):
    """Per contender: wall seconds of each timed call, the share of the machine's CPUs other processes kept
    busy during that call (0 = we had the machine to ourselves; None where unknown), and the CPU seconds this
    process spent in the call (all its threads: the work done, which other processes' load does not inflate
    the way it inflates wall time; on an accelerator it is the host's share only)."""

    seconds: dict[str, list[float]]
    others_cpu: dict[str, list[float | None]]
    own_cpu: dict[str, list[float]]


def block(result):
    """Wait until `result` is computed, for `interleaved(sync=...)`: a torch tensor (a CUDA sync when it lives
    there) or anything jax.block_until_ready takes. Imports lazily: this module needs neither library."""
    if type(result).__module__.startswith("torch"):
        if result.is_cuda:
            import torch
            torch.cuda.synchronize()
        return result
    import jax
    return jax.block_until_ready(result)


def interleaved(fns: dict[str, Callable[[], object]], *, warmup: int = 1, repeats: int = 5,
                sync: Callable[[object], object] | None = None) -> Timings:
    """Time each named function: `warmup` untimed rounds, then `repeats` timed rounds, each round calling every
    function once in the given order. `sync(result)` runs inside the timed region."""
    sync = sync or (lambda r: r)
    for _ in range(warmup):
        for fn in fns.values():
            sync(fn())
    out = Timings({name: [] for name in fns}, {name: [] for name in fns}, {name: [] for name in fns})
    cpus = os.cpu_count() or 1
    for _ in range(repeats):
        for name, fn in fns.items():
            busy0, own0, cpu0, t0 = _busy_cpu_seconds(), _own_cpu_seconds(), time.process_time(), time.perf_counter()
            sync(fn())
            elapsed = time.perf_counter() - t0
            cpu1, busy1, own1 = time.process_time(), _busy_cpu_seconds(), _own_cpu_seconds()
            out.seconds[name].append(elapsed)
            others = None
            if busy0 is not None and busy1 is not None:
                others = min(1.0, max(0.0, (busy1 - busy0 - (own1 - own0)) / (elapsed * cpus)))
            out.others_cpu[name].append(others)
            out.own_cpu[name].append(cpu1 - cpu0)  # nanosecond clock (os.times ticks at 10 ms)
    return out


def summary(seconds: list[float], others_cpu: list[float | None] | None = None, quiet_below: float = 0.1,
            min_quiet: int = 3) -> dict:
    """median / min / max / all of a list of timings; with `others_cpu`, also the median over the calls during
    which other processes used less than `quiet_below` of the machine (when at least `min_quiet` such calls)."""
    s = {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
         "all": [round(x, 6) for x in seconds]}
    if others_cpu is not None and all(o is not None for o in others_cpu):
        s["others_cpu"] = [round(o, 3) for o in others_cpu]
        quiet = [x for x, o in zip(seconds, others_cpu) if o < quiet_below]
        s["quiet_calls"] = len(quiet)
        s["median_quiet"] = statistics.median(quiet) if len(quiet) >= min_quiet else None
    return s


class PeakRSS:
    """Peak resident-set growth (bytes) of this process while the block runs, sampled every `interval_s`.

    A coarse figure: memory the allocator kept from earlier work is reused without growing RSS, so measure a
    framework's first call after loading. Linux only (reads /proc/self/statm); elsewhere `peak_bytes` is None.
    """

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak_bytes = None

    @staticmethod
    def rss() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return None

    def __enter__(self):
        self._start = self.rss()
        self._max = self._start
        self._stop = threading.Event()
        if self._start is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._max = max(self._max, self.rss() or 0)
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        self._stop.set()
        if self._start is not None:
            self._thread.join()
            self._max = max(self._max, self.rss() or 0)
            self.peak_bytes = self._max - self._start
        return False


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(json_path: str, result: dict, markdown: str) -> tuple[str, str]:
    """Write `result` as JSON and `markdown` next to it (same name, .md). Returns both paths."""
    json_path = os.path.abspath(json_path)
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    md_path = os.path.splitext(json_path)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(markdown.rstrip() + "\n")
    return json_path, md_path


def command_line() -> str:
    return " ".join(["python"] + sys.argv)
