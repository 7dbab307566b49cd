"""What a `--checkpoint=` flag names, and the parameters of a run's orbax checkpoints: shared by evaluate and export.

A checkpoint source is one of
  a run directory        (`run_dir.is_run_dir`: checkpoints/ and policy/ inside): every finished step in it;
  an orbax step dir      (`<run>/checkpoints/<step>`): that step; architecture and tokenizer come from
                         `<run>/policy/` (config.json + tokenizer files, written by the trainer);
  an HF model directory  (config.json + *.safetensors): e.g. the base model, or an exported checkpoint.
The run directory is recognised by its layout first, so its own config.json never makes it look like an HF model
directory.
"""
from __future__ import annotations

import dataclasses
import os

import jax
from flax import nnx

from syngrpo_jax import run_dir
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.models.qwen2_5_vl import Qwen25VL
from syngrpo_jax.parallel.sharding import state_shardings
from syngrpo_jax.policy import architecture

KINDS_HELP = ("a run directory (checkpoints/ and policy/ inside), an orbax step directory "
              "(<run>/checkpoints/<step>), or an HF model directory (config.json and *.safetensors)")


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """What --checkpoint names. kind: "hf" | "step" | "workdir" (a run directory)."""

    kind: str
    path: str  # --checkpoint, absolute
    model_dir: str  # hf: the model dir; step / workdir: <run>/policy (architecture + tokenizer, no weights)
    checkpoints_dir: str | None  # step / workdir: <run>/checkpoints
    steps: tuple[int, ...]  # step / workdir: the finished steps named (all of the run's, or the one)
    eval_root: str  # the default evaluation root: <hf_dir>/eval or <run>/eval
    run: run_dir.RunDir | None = None  # step / workdir: the run


def _has_weights(path: str) -> bool:
    return any(name.endswith(".safetensors") for name in os.listdir(path))


def _policy_dir(run: run_dir.RunDir, checkpoint: str) -> str:
    if not os.path.isfile(os.path.join(run.policy, run_dir.CONFIG_FILE)):
        raise FileNotFoundError(f"--checkpoint={checkpoint!r}: {run.policy!r} has no config.json; the run's "
                                f"architecture and tokenizer are read from there (the trainer writes them)")
    return run.policy


def _finished_steps(directory: str) -> list[int]:
    return Checkpointer(directory, max_to_keep=None, async_save=False).all_steps()


def resolve_checkpoint(path: str) -> CheckpointSource:
    """Which of the three kinds `path` is (see the module docstring); an error naming it when none."""
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(full):
        raise FileNotFoundError(f"--checkpoint={path!r}: no such directory; give {KINDS_HELP}")
    if run_dir.is_run_dir(full):
        run = run_dir.RunDir(full)
        steps = tuple(_finished_steps(run.checkpoints)) if os.path.isdir(run.checkpoints) else ()
        if not steps:
            raise ValueError(f"--checkpoint={path!r} is a run directory without any finished checkpoint in "
                             f"{run.checkpoints!r}")
        return CheckpointSource("workdir", full, _policy_dir(run, path), run.checkpoints, steps, run.eval, run)
    run = run_dir.run_of_step_dir(full)
    if run is not None and os.path.isdir(os.path.join(full, "params")):
        if int(os.path.basename(full)) not in _finished_steps(run.checkpoints):
            raise ValueError(f"--checkpoint={path!r} is not a finished checkpoint of {run.checkpoints!r} (a save "
                             f"that did not complete?)")
        return CheckpointSource("step", full, _policy_dir(run, path), run.checkpoints, (int(os.path.basename(full)),),
                                run.eval, run)
    if os.path.isfile(os.path.join(full, run_dir.CONFIG_FILE)):
        if not _has_weights(full):
            raise ValueError(f"--checkpoint={path!r} has config.json but no *.safetensors weights (a run's policy/ "
                             f"directory holds only the architecture: give the run directory or a step directory)")
        return CheckpointSource("hf", full, full, None, (), os.path.join(full, run_dir.EVAL))
    raise ValueError(f"--checkpoint={path!r} is none of the kinds: {KINDS_HELP}")


class OrbaxParams:
    """Restores the parameters of a run's checkpoints, laid out as asked: parameter dtype `param_dtype`, sharded
    over `mesh` (None: on the first device). `model(params)` is the Flax model holding them."""

    def __init__(self, source: CheckpointSource, *, param_dtype=None, compute_dtype=None, attention_impl="xla",
                 mesh=None):
        if source.checkpoints_dir is None:
            raise ValueError(f"{source.path!r} is an HF model directory, not a run's checkpoint")
        self.config = architecture(source.model_dir)
        abstract = nnx.eval_shape(lambda: Qwen25VL(self.config, rngs=nnx.Rngs(0), param_dtype=param_dtype,
                                                   dtype=compute_dtype, attention_impl=attention_impl, mesh=mesh))
        self.graphdef, state = nnx.split(abstract)
        shapes = nnx.to_pure_dict(state)
        if mesh is None:
            device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            shardings = jax.tree.map(lambda _: device, shapes)
        else:
            shardings = nnx.to_pure_dict(state_shardings(state, mesh))
        self.like = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)
        self.checkpointer = Checkpointer(source.checkpoints_dir, max_to_keep=None, async_save=False)

    def restore(self, step: int):
        """The pure-dict parameters of checkpoint `step`."""
        return self.checkpointer.restore_params(step, params_like=self.like)

    def model(self, params) -> Qwen25VL:
        return nnx.merge(self.graphdef, params)

    def close(self) -> None:
        self.checkpointer.close()
