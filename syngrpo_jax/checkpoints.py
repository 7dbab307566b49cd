"""Training checkpoints: orbax CheckpointManager over (params, optimizer state, host state as JSON).

Saves are asynchronous (training continues while arrays are written) and atomic (a step directory appears only
when complete, so a crash mid-save leaves the previous checkpoint intact); the last `max_to_keep` are kept.
Arrays restore straight into the shardings of the templates given, so a run resumes on a different mesh as
long as shapes agree. Host state (step, diversity smoother, data pool, config) is plain JSON next to them.

Damage (a disk that filled up, a copy cut short, a file deleted by hand) is found by restoring: `restore()`
without a step tries the newest step first, item by item; a step any item of which cannot be read is named,
moved aside to <directory>/damaged/<step>-<UTC time> (never deleted: it may still be rescued), and the next
newer one is tried. One warning says which steps were moved and which step the run resumes from. Steps are
moved only when an older one restores in their place: if none does (every step damaged, or a config that no
longer matches what was saved), one CheckpointError names the directory and each step's reason, and nothing
is moved. orbax's own log lines during these attempts, and the tracebacks its abandoned reads print later,
are held back; the reasons carry the first line of what failed.
"""
from __future__ import annotations

import contextlib
import datetime
import inspect
import logging
import os
import sys
import traceback

import jax
import orbax.checkpoint as ocp

log = logging.getLogger("syngrpo_jax.checkpoints")

DAMAGED_DIR = "damaged"
_LIBRARY_LOGGERS = ("absl", "orbax", "tensorstore")
_ORBAX_DIR = os.path.dirname(ocp.__file__)
_noise_filtered = False


class CheckpointError(RuntimeError):
    """No checkpoint step could be restored; the message names the directory and every step's reason."""


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
                        tree)


@contextlib.contextmanager
def _quiet_libraries():
    """Our caller reports a failed read once, with its reason: orbax's log records are dropped meanwhile."""
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _is_abandoned_read_noise(unraisable) -> bool:
    """What orbax's abandoned reads print after a failed restore, seconds later: each read coroutine left pending
    when one array failed prints a traceback when collected ("Exception ignored in <coroutine
    _read_array_index_and_device_put>": 28 of them for a small model), and each tensorstore read finishing into
    the closed event loop prints "Event loop is closed"."""
    obj, exc = unraisable.object, unraisable.exc_value
    if inspect.iscoroutine(obj) and obj.cr_code.co_filename.startswith(_ORBAX_DIR):
        return True
    return (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"
            and any(f.name == "call_soon_threadsafe" for f in traceback.extract_tb(unraisable.exc_traceback)))


def _drop_abandoned_read_noise() -> None:
    """Installed (once, for the rest of the process) after a restore failed: the reads it abandoned finish at
    their own pace, long after the failure was reported."""
    global _noise_filtered
    if _noise_filtered:
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if not _is_abandoned_read_noise(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook
    _noise_filtered = True


def _reason(item: str, error: BaseException) -> str:
    """'<item>: <type>: <first line>' of the innermost cause (orbax wraps tensorstore's specific message)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{item}: {type(error).__name__}: {text[:240]}{'...' if len(text) > 240 else ''}"


class Checkpointer:
    def __init__(self, directory: str, *, max_to_keep: int | None = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        with _quiet_libraries():  # an empty step directory makes orbax warn about its metadata here
            self.manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
                                                     create=True))

    def save(self, step: int, *, params, opt_state, state: dict, ref_params=None, force: bool = True) -> bool:
        """Start saving `step` (returns at once when async); `state` must be JSON-serialisable. ref_params: the
        frozen KL reference, when the run has one (it is the post-warm-start policy, not re-derivable cheaply)."""
        items = dict(params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
                     state=ocp.args.JsonSave(state))
        if ref_params is not None:
            items["ref_params"] = ocp.args.StandardSave(ref_params)
        return self.manager.save(step, force=force, args=ocp.args.Composite(**items))

    def latest_step(self) -> int | None:
        """The newest step directory present (intact or not: `restore()` finds out, and falls back)."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, step: int | None = None, *, params_like, opt_state_like, ref_params_like=None):
        """(params, opt_state, ref_params or None, state) laid out like the templates: of `step`, or of the newest
        step that restores, damaged newer ones moved aside (see the module docstring)."""
        items = dict(params=ocp.args.StandardRestore(_abstract(params_like)),
                     opt_state=ocp.args.StandardRestore(_abstract(opt_state_like)), state=ocp.args.JsonRestore())
        if ref_params_like is not None:
            items["ref_params"] = ocp.args.StandardRestore(_abstract(ref_params_like))
        out = self._restore_step(step, items) if step is not None else self._restore_newest_intact(items)
        return out["params"], out["opt_state"], out.get("ref_params"), out["state"]

    def restore_params(self, step: int | None = None, *, params_like):
        """Only the parameters (evaluation, export)."""
        step = self._step_or_latest(step)
        return self._restore_step(step, dict(params=ocp.args.StandardRestore(_abstract(params_like))))["params"]

    def restore_state(self, step: int | None = None) -> dict:
        step = self._step_or_latest(step)
        return self._restore_step(step, dict(state=ocp.args.JsonRestore()))["state"]

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    # ---- restore, damage -------------------------------------------------------------------------------------

    def _step_or_latest(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory!r}")
        return step

    def _read(self, step: int, items: dict) -> dict:
        """Each item on its own, so a failure names the item; raises ValueError('<item>: <reason>')."""
        out, failure = {}, None
        with _quiet_libraries():
            for name, args in items.items():
                try:
                    out[name] = self.manager.restore(step, args=ocp.args.Composite(**{name: args}))[name]
                except Exception as e:  # orbax, tensorstore, json and os errors: any of them means unreadable
                    failure = _reason(name, e)  # not raised here: the error's frames must be freed first
                    break
        if failure is not None:
            _drop_abandoned_read_noise()
            raise ValueError(failure)
        return out

    def _restore_step(self, step: int, items: dict) -> dict:
        try:
            return self._read(step, items)
        except ValueError as e:
            raise CheckpointError(f"checkpoint step {step} in {self.directory} cannot be restored: {e}") from None

    def _restore_newest_intact(self, items: dict) -> dict:
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory!r}")
        failed: list[tuple[int, str]] = []
        for step in steps:
            try:
                out = self._read(step, items)
            except ValueError as e:
                failed.append((step, str(e)))
                continue
            if failed:
                self._move_aside(failed, resumed=step)
            return out
        reasons = "; ".join(f"step {s}: {why}" for s, why in failed)
        raise CheckpointError(
            f"no checkpoint in {self.directory} can be restored into this run ({reasons}). If they are damaged, "
            f"move them out of the way (e.g. into {os.path.join(self.directory, DAMAGED_DIR)}/) to start over; if the "
            "model or optimizer config changed since they were saved, resume with the config they were saved with")

    def _move_aside(self, failed: list[tuple[int, str]], *, resumed: int) -> None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target_dir = os.path.join(self.directory, DAMAGED_DIR)
        moved = []
        if jax.process_index() == 0:  # one process moves; the others find the step gone or damaged alike
            os.makedirs(target_dir, exist_ok=True)
            for step, _ in failed:
                target = os.path.join(target_dir, f"{step}-{stamp}")
                os.rename(os.path.join(self.directory, str(step)), target)
                moved.append(target)
            log.warning("damaged checkpoint step%s %s in %s moved to %s (%s); resuming from step %d, the newest "
                        "intact one", "s" if len(failed) > 1 else "", ", ".join(str(s) for s, _ in failed),
                        self.directory, ", ".join(moved), "; ".join(f"step {s}: {why}" for s, why in failed), resumed)
        self.manager.reload()
