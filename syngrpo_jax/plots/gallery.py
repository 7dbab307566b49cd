"""The gallery: each tracked sample's training images across epochs. gallery.json is written by the trainer
(`write_gallery`) and drawn here as gallery.png (`plot_gallery`)."""
from __future__ import annotations

import json
import logging
import math
import os
import textwrap
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write_json
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.plots.series import metric_series, save_figure

log = logging.getLogger(__name__)


def write_gallery(run: run_dir.RunDir, pool, n: int) -> None:
    """gallery.json: the image versions of the pool's first `n` tracked samples (`DataPool.tracked_ids`)."""
    tracked = []
    for sid in pool.tracked_ids(n):
        tracked.append({"sample_id": sid, "original": pool.original(sid).image_path, "history": [
            {"version": v.version, "epoch": v.epoch or 0, "step": v.applied_step or 0, "path": v.image_path,
             "description": v.description or ""} for v in pool.history(sid)]})
    atomic_write_json(run.gallery, {"tracked": tracked}, indent=1)


def _check_gallery(gallery, path: str) -> list[dict]:
    if not isinstance(gallery, dict) or not isinstance(gallery.get("tracked"), list):
        raise ValueError(f"{path}: expected an object with a 'tracked' list")
    for i, t in enumerate(gallery["tracked"]):
        if not isinstance(t, dict) or not isinstance(t.get("sample_id"), str | int) or "original" not in t:
            raise ValueError(f"{path}: tracked[{i}] needs 'sample_id' and 'original', got {t!r:.200}")
        history = t.get("history", [])
        if not isinstance(history, list):
            raise ValueError(f"{path}: tracked[{i}].history must be a list, got {type(history).__name__}")
        for j, h in enumerate(history):
            if not isinstance(h, dict) or not isinstance(h.get("version"), int) or "path" not in h:
                raise ValueError(f"{path}: tracked[{i}].history[{j}] needs an int 'version' and a 'path', "
                                 f"got {h!r:.200}")
            if h.get("epoch") is not None and not isinstance(h["epoch"], int | float):
                raise ValueError(f"{path}: tracked[{i}].history[{j}].epoch must be a number, got {h['epoch']!r}")
    return gallery["tracked"]


def _entry_epoch(entry: dict) -> int:
    return -1 if entry.get("epoch") is None else int(math.floor(entry["epoch"]))


def gallery_columns(tracked: dict, epochs: Sequence[int]) -> list[dict | None]:
    """For each epoch e, the last history entry applied at or before the end of epoch e (None: the original)."""
    out = []
    for e in epochs:
        chosen = None
        for entry in tracked.get("history", []):  # application order: the last match is the latest
            if _entry_epoch(entry) <= e:
                chosen = entry
        out.append(None if chosen is None or chosen["version"] == 0 else chosen)
    return out


_SMALL = 256  # pixels: images up to this side are shown larger than they are (a cell is about 230 px)


def _load_image(path: str, max_side: int = 384) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            return np.asarray(im)
    except (OSError, ValueError) as e:
        log.warning("gallery: cannot read %s (%s)", path, e)
        return None


def _caption(head: str, description: str | None, width: int = 30, lines: int = 3) -> str:
    if not description:
        return head
    wrapped = textwrap.wrap(" ".join(str(description).split()), width=width, max_lines=lines, placeholder=" …")
    return head + "\n" + "\n".join(wrapped)


def plot_gallery(workdir: str, out_path: str, max_epochs: int | None = None, max_samples: int | None = None,
                 metrics_epochs: bool = True) -> Figure:
    """gallery.png from `<workdir>/gallery.json`: rows are tracked samples, columns the original and the image
    at the end of each epoch 0..E. E is the largest epoch in the gallery or (metrics_epochs) in metrics.jsonl.

    max_epochs    at most this many epoch columns, evenly spaced, always including the first and the last.
    max_samples   at most this many rows (the first ones).
    Missing or unreadable image files are drawn as grey placeholders.
    """
    path = os.path.join(workdir, run_dir.GALLERY_FILE)
    with open(path, encoding="utf-8") as f:
        tracked = _check_gallery(json.load(f), path)
    if max_samples is not None:
        tracked = tracked[:max_samples]
    if not tracked:
        raise ValueError(f"{path}: no tracked samples")
    last_epoch = max([_entry_epoch(h) for t in tracked for h in t.get("history", [])] + [0])
    if metrics_epochs and os.path.exists(os.path.join(workdir, run_dir.METRICS_FILE)):
        _, epochs_logged = metric_series(read_metrics(workdir), "epoch")
        finite = epochs_logged[np.isfinite(epochs_logged)]
        if len(finite):
            last_epoch = max(last_epoch, int(math.floor(finite.max())))
    epochs = list(range(last_epoch + 1))
    if max_epochs is not None and len(epochs) > max_epochs:
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs!r}")
        epochs = sorted({int(round(x)) for x in np.linspace(0, last_epoch, max_epochs)})

    def resolve(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(workdir, p)

    ncols, nrows = 1 + len(epochs), len(tracked)
    fig = Figure(figsize=(2.35 * ncols + 0.4, 3.05 * nrows + 0.5), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for row, t in enumerate(tracked):
        cells = [(resolve(t["original"]), "original (v0)", None, None)]
        previous = None
        for e, entry in zip(epochs, gallery_columns(t, epochs)):
            if entry is None:
                cells.append((resolve(t["original"]), "v0 (original)", None, e))
                continue
            if entry is previous:  # nothing new this epoch: say so instead of repeating the caption
                cells.append((resolve(entry["path"]), f"v{entry['version']} (unchanged)", None, e))
                continue
            head = f"v{entry['version']} · epoch {_entry_epoch(entry)}"
            if entry.get("step") is not None:
                head += f" · step {entry['step']}"
            cells.append((resolve(entry["path"]), head, entry.get("description"), e))
            previous = entry
        for col, (image_path, head, description, e) in enumerate(cells):
            ax = axes[row, col]
            image = _load_image(image_path) if os.path.exists(image_path) else None
            if image is None:
                ax.imshow(np.full((96, 96, 3), 0.82))
                reason = "missing" if not os.path.exists(image_path) else "unreadable"
                ax.text(0.5, 0.5, f"{reason}\n{os.path.basename(image_path)[:28]}", transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="0.25")
            else:  # a small image is enlarged pixel for pixel: smoothing would blur a 1-px edge into a band
                ax.imshow(image, interpolation="nearest" if max(image.shape[:2]) <= _SMALL else "antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("0.8")
            ax.set_xlabel(_caption(head, description), fontsize=7, loc="left", linespacing=1.2)
            if row == 0:
                ax.set_title("original" if e is None else f"end of epoch {e}", fontsize=10, fontweight="bold")
        axes[row, 0].set_ylabel(str(t["sample_id"])[:40], fontsize=9)
    fig.suptitle(f"Training images over epochs: {os.path.basename(os.path.normpath(workdir))}", fontsize=12)
    save_figure(fig, out_path)
    return fig
