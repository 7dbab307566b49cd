"""Training metrics: one JSON object per step in `<workdir>/metrics.jsonl`, mirrored to TensorBoard.

    with MetricsWriter(workdir, resume_step=restored_step) as writer:
        writer.write(step, {"reward/total": r, "entropy": ent, "time/step": dt})
    records = read_metrics(workdir)       # [{"step": 0, "time": 1.7e9, "reward/total": 1.2, ...}, ...]

The JSONL file is the durable record (plots and analyses read it): every line is flushed as it is written, so a
crash loses nothing already written, and at worst leaves a torn last line, which readers skip and the next
writer removes. Non-finite values are written as `null` so every line stays valid JSON (Python's `NaN` is not).
TensorBoard gets the same scalars (tag = metric name; `reward/accuracy` lands in the `reward` group), minus the
non-finite ones, which would wreck its axis ranges.

Resuming from a checkpoint at step S repeats the steps after S, so a writer given `resume_step=S` first drops the
lines with step > S (atomic rewrite: temp file + rename), and tells TensorBoard to purge its events after S too.
Only one process should write (process 0 in a multi-host run).
"""
from __future__ import annotations

import json
import logging
import math
import numbers
import os
import time
from typing import Any, Mapping

import numpy as np

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write

_RESERVED = ("step", "time")

log = logging.getLogger(__name__)


def metrics_path(path_or_workdir: str | os.PathLike) -> str:
    """`<workdir>/metrics.jsonl` for a directory, the path itself for a file."""
    path = os.fspath(path_or_workdir)
    return os.path.join(path, run_dir.METRICS_FILE) if os.path.isdir(path) else path


def to_scalar(key: str, value: Any) -> bool | int | float:
    """A Python bool/int/float from a Python, numpy or jax scalar (0-d array); ValueError naming `key` otherwise.

    jax arrays are handled through numpy's array protocol, so this module never imports jax.
    """
    if isinstance(value, bool | numbers.Integral | numbers.Real) and not isinstance(value, np.ndarray | np.generic):
        if isinstance(value, bool):
            return value
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - anything unconvertible is a bad value, reported with its key
        raise ValueError(f"metric {key!r}: cannot convert {type(value).__name__} to a scalar ({e})") from None
    if array.ndim != 0:
        raise ValueError(f"metric {key!r}: expected a scalar, got {type(value).__name__} of shape {array.shape}")
    kind = array.dtype.kind
    if kind == "b":
        return bool(array)
    if kind in "iu":
        return int(array)
    if kind == "f" or (kind == "V" and array.dtype.name.startswith(("bfloat", "float"))):  # ml_dtypes floats
        return float(array)
    raise ValueError(f"metric {key!r}: expected a number or bool, got {type(value).__name__} "
                     f"of dtype {array.dtype}")


def _json_value(value: bool | int | float) -> bool | int | float | None:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _parse_lines(text: str, path: str) -> tuple[list[dict], int]:
    """(records, number of unparsable lines skipped). A torn last line (no newline, or bad JSON) is dropped quietly;
    a bad line in the middle (e.g. a torn line that an older writer appended after) is skipped with a warning."""
    lines = text.split("\n")
    torn_tail = lines.pop()  # "" when the file ends with a newline, else a line cut short by a crash
    if torn_tail.strip():
        log.info("%s: dropping a torn last line (%d chars)", path, len(torn_tail))
    records, skipped = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not an object with an integer 'step'")
        except ValueError as e:
            if number == len(lines):
                log.info("%s: dropping an unparsable last line", path)
            else:
                log.warning("%s:%d: skipping an unparsable line (%s)", path, number, e)
            skipped += 1
            continue
        records.append(record)
    return records, skipped + bool(torn_tail.strip())


def read_metrics(path_or_workdir: str | os.PathLike) -> list[dict]:
    """Every record of `<workdir>/metrics.jsonl` (or of the file given), in file order; `null` values read as None.

    Safe to call while a trainer is writing: a partly written last line is ignored.
    """
    path = metrics_path(path_or_workdir)
    with open(path, encoding="utf-8") as f:
        return _parse_lines(f.read(), path)[0]


class MetricsWriter:
    """Appends `{"step", "time", **scalars}` lines to `<workdir>/metrics.jsonl` and scalars to TensorBoard.

    resume_step   the step of the checkpoint a run restarts from: lines with a larger step are removed (they
                  would be written again), and TensorBoard events after it are purged. None: append as is.
    tensorboard   also write TensorBoard event files under `<workdir>/tensorboard/`.
    """

    def __init__(self, workdir: str | os.PathLike, *, resume_step: int | None = None, tensorboard: bool = True,
                 tensorboard_flush_secs: float = 10.0):
        if resume_step is not None and (isinstance(resume_step, bool) or not isinstance(resume_step, int)):
            raise ValueError(f"resume_step must be an int or None, got {resume_step!r}")
        self.workdir = os.path.abspath(os.fspath(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        self.path = os.path.join(self.workdir, run_dir.METRICS_FILE)
        self._prepare_file(resume_step)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # imported here: plots and readers do not need it

            # purge_step: TensorBoard hides this run's earlier events from resume_step + 1 on, so the repeated
            # steps are not drawn twice.
            self._tb = SummaryWriter(os.path.join(self.workdir, run_dir.TENSORBOARD), flush_secs=tensorboard_flush_secs,
                                     purge_step=None if resume_step is None else resume_step + 1)

    def _prepare_file(self, resume_step: int | None) -> None:
        """Drop a torn last line, and on resume the lines after `resume_step`, by an atomic rewrite."""
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        if resume_step is None and (not text or text.endswith("\n")):
            return  # nothing to drop: plain append
        records, _ = _parse_lines(text, self.path)
        kept = records if resume_step is None else [r for r in records if r["step"] <= resume_step]
        if resume_step is not None and len(kept) < len(records):
            log.info("%s: resuming at step %d, removing %d later records", self.path, resume_step,
                     len(records) - len(kept))
        atomic_write(self.path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record the scalars of one step. Keys are metric names (slashes group them); values are scalars."""
        if self._file is None:
            raise RuntimeError("MetricsWriter is closed")
        step = to_scalar("step", step)
        if not isinstance(step, int) or isinstance(step, bool):
            raise ValueError(f"step must be an integer, got {step!r}")
        values = {}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"metric names must be non-empty strings, got {key!r}")
            value = to_scalar(key, value)
            if key == "step":  # the trainer may include it; it must agree
                if value != step:
                    raise ValueError(f"metric 'step' = {value!r} disagrees with write(step={step})")
                continue
            if key in _RESERVED:
                raise ValueError(f"metric name {key!r} is reserved (the writer sets it)")
            values[key] = value
        now = time.time()
        record = {"step": step, "time": now, **{k: _json_value(v) for k, v in values.items()}}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in values.items():
                if math.isfinite(value):
                    self._tb.add_scalar(key, float(value), global_step=step, walltime=now)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
