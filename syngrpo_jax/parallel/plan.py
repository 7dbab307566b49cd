r"""Memory plan of a training run, per device, before anything is allocated.

    python -m syngrpo_jax.parallel.plan --config=configs/rec.py:model=qwen2_5_vl_3b --mesh=data=1,fsdp=4,tensor=1 \
        --device_memory_gb=80
    python -m syngrpo_jax.parallel.plan --config=configs/rec.py:model=qwen2_5_vl_7b --mesh=fsdp=8 --xla

The model comes from `model.path` (its config.json, or the released architecture the directory is named after,
so no download is needed) or `model.tiny`. Parameters, optimizer state (AdamW moments as `grpo/optimizer.py`
builds them), the frozen reference model (only when the method is RL and loss.kl_coef > 0) and the batch are
counted exactly as the trainer places them: abstract arrays (`nnx.eval_shape`, `jax.eval_shape`) with the
shardings of `parallel/sharding.py` and `grpo/train_step.py` on an abstract mesh of the given size.
Gradients are two parameter-shaped trees (the accumulator over micro-batches and one micro-batch's gradient).
Activations are an estimate (`parallel/memory.py` says how it is made); the JAX sampler's KV cache is the
rollout's peak, which is not alive at the same time as the update's. `--xla` compiles the trainer's own
jitted step on abstract inputs for that many virtual CPU devices and prints XLA's per-device sizes beside the
plan (nothing is allocated; the CPU backend computes bfloat16 math in float32, so its temporaries overstate a
GPU's for bfloat16 runs).

Batch shapes follow the config (batch_size x group_size rows in micro_batches, responses of rollout.max_tokens)
plus two assumptions: the training images' size (--image_size, COCO's typical 640x480 by default, resized by
data.min/max_pixels as the processor does) and the text tokens of a prompt (--prompt_tokens). When the plan does
not fit, it says which single knob (remat, micro-batches, fsdp size, bfloat16 parameters) would make it fit.
"""
from __future__ import annotations

import dataclasses
import json
import math

import jax
import ml_collections
import numpy as np
from flax import nnx

from syngrpo_jax import methods
from syngrpo_jax.grpo import train_step as ts
from syngrpo_jax.grpo.batch import build_train_batch
from syngrpo_jax.grpo.losses import LossConfig
from syngrpo_jax.grpo.optimizer import optimizer_from_config
from syngrpo_jax.models.config import Qwen25VLConfig
from syngrpo_jax.models.qwen2_5_vl import Qwen25VL
from syngrpo_jax.models.released import architecture_of
from syngrpo_jax.models.tiny import tiny_config
from syngrpo_jax.parallel import memory, sharding
from syngrpo_jax.parallel.mesh import MESH_AXES
from syngrpo_jax.policy import dtype_of
from syngrpo_jax.processing.image import smart_resize
from syngrpo_jax.rollout.base import RolloutRequest

GIB = 1024**3
REMAT_ORDER = ("none", "dots", "full")  # increasing memory saving


def parse_mesh(text: str, base: dict | None = None) -> dict[str, int]:
    """'data=1,fsdp=8,tensor=1' -> sizes (axes not named keep `base`'s size, else 1). Errors name the field."""
    sizes = {a: 1 for a in MESH_AXES} if base is None else {a: int(base[a]) for a in MESH_AXES}
    for part in filter(None, (text or "").split(",")):
        name, eq, value = part.partition("=")
        name = name.strip()
        if name not in MESH_AXES:
            raise ValueError(f"--mesh: axis {name!r} (in {part!r}) is unknown; axes are {', '.join(MESH_AXES)}")
        try:
            size = int(value) if eq else None
        except ValueError:
            size = None
        if size is None or size < 1:
            raise ValueError(f"--mesh: mesh.{name}={value.strip() if eq else ''!r} must be a positive integer")
        sizes[name] = size
    for name, size in sizes.items():
        if size < 1:
            raise ValueError(f"--mesh: mesh.{name}={size!r} must be a positive integer (the plan has no device "
                             f"count to fill in a -1; give every size, e.g. --mesh=data=1,fsdp=8,tensor=1)")
    return sizes


def abstract_mesh(sizes: dict[str, int]) -> jax.sharding.AbstractMesh:
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return jax.sharding.AbstractMesh(tuple(sizes[a] for a in MESH_AXES), MESH_AXES, axis_types=auto)


def model_config_of(config) -> Qwen25VLConfig:
    """The architecture the run config trains: model.path's config.json / released name, or model.tiny."""
    if config.model.path:
        return architecture_of(config.model.path)
    tiny = config.model.get("tiny")
    if tiny is None:
        raise ValueError("model.path is empty and model.tiny is not set")
    return tiny_config(vocab_size=tiny.vocab_size, image_token_id=tiny.vocab_size - 1,
                       video_token_id=tiny.vocab_size - 2, vision_start_token_id=tiny.vocab_size - 3,
                       vision_end_token_id=tiny.vocab_size - 4, hidden_size=tiny.hidden_size,
                       num_layers=tiny.num_layers, num_heads=tiny.num_heads, num_kv_heads=tiny.num_kv_heads,
                       intermediate_size=tiny.intermediate_size, vision_hidden_size=tiny.vision_hidden_size,
                       vision_depth=tiny.vision_depth, vision_heads=tiny.vision_heads,
                       vision_intermediate_size=tiny.vision_intermediate_size,
                       fullatt_block_indexes=tuple(tiny.fullatt_block_indexes))


@dataclasses.dataclass(frozen=True)
class Assumptions:
    """What the config does not fix: the training images' size and the text length of a prompt."""

    image_size: tuple[int, int] = (640, 480)  # width, height in pixels before the processor's resize
    prompt_tokens: int = 128  # text tokens per prompt (chat template included), image tokens apart
    device_memory_gb: float = 80.0  # per device, GiB
    memory_fraction: float = 0.9  # the share XLA may use (launch scripts set XLA_PYTHON_CLIENT_MEM_FRACTION)


@dataclasses.dataclass
class Plan:
    """Per-device bytes of one configuration. `state` is what the trainer places (exact); `activations` the
    estimate; `rollout` the JAX sampler's peak (0 with an engine on other devices)."""

    description: dict
    state: dict[str, int]
    activations: dict[str, int]
    rollout: int
    usable: int

    @property
    def persistent(self) -> int:
        return self.state["parameters"] + self.state["optimizer state"] + self.state["reference model"]

    @property
    def update(self) -> int:
        return self.state["gradients"] + self.state["batch"] + sum(self.activations.values())

    @property
    def peak(self) -> int:
        return self.persistent + max(self.update, self.rollout)

    @property
    def fits(self) -> bool:
        return self.peak <= self.usable

    def to_dict(self) -> dict:
        return dict(description=self.description, state=self.state, activations=self.activations,
                    rollout=self.rollout, persistent=self.persistent, update=self.update, peak=self.peak,
                    usable=self.usable, fits=self.fits)


def _abstract_model(config, model_cfg: Qwen25VLConfig, mesh=None):
    """(graphdef, abstract state) of the policy with the run's dtypes and options, as `policy.load_policy`
    builds it (the mesh only matters to the forward's activation constraints)."""
    dtype = dtype_of(config.model.dtype)
    compute = dtype_of(config.model.get("compute_dtype") or config.model.dtype)
    make = lambda: Qwen25VL(model_cfg, rngs=nnx.Rngs(0), param_dtype=dtype, dtype=compute,  # noqa: E731
                            attention_impl=config.model.attention_impl, remat=config.model.remat, mesh=mesh)
    return nnx.split(nnx.eval_shape(make))


def example_micro_batch(config, model_cfg: Qwen25VLConfig, assumptions: Assumptions):
    """One micro-batch of the update (leading axis 1), assembled from zeros by `grpo/batch.py` itself: B / M
    prompts of one image each (`assumptions`' size and text length), G responses of rollout.max_tokens each."""
    b, m, g = config.train.batch_size, config.train.micro_batches, config.rollout.group_size
    if m < 1 or b % m:
        raise ValueError(f"train.micro_batches={m!r} must divide train.batch_size={b}")
    vc = model_cfg.vision
    width, height = assumptions.image_size
    factor = vc.patch_size * vc.spatial_merge_size
    h, w = smart_resize(height, width, factor=factor, min_pixels=config.data.min_pixels,
                        max_pixels=config.data.max_pixels)
    grid = np.array([[1, h // vc.patch_size, w // vc.patch_size]])
    n_patches = int(np.prod(grid))
    specials = {model_cfg.image_token_id, model_cfg.video_token_id, model_cfg.vision_start_token_id,
                model_cfg.vision_end_token_id}
    text = next(i for i in range(model_cfg.text.vocab_size) if i not in specials)
    ids = np.array([text] * (assumptions.prompt_tokens // 2) + [model_cfg.vision_start_token_id]
                   + [model_cfg.image_token_id] * (n_patches // vc.merge_unit) + [model_cfg.vision_end_token_id]
                   + [text] * (assumptions.prompt_tokens - assumptions.prompt_tokens // 2))
    request = RolloutRequest(ids, np.zeros((n_patches, vc.patch_dim), np.float32), grid)
    t = config.rollout.max_tokens
    return build_train_batch(model_cfg, [request] * (b // m), [[np.full(t, text)] * g] * (b // m),
                             np.zeros(b // m * g, np.float32), micro_batches=1,
                             prompt_multiple=config.rollout.prompt_multiple,
                             response_multiple=config.rollout.response_multiple or t, max_response_len=t)


def abstract_batch(config, model_cfg: Qwen25VLConfig, assumptions: Assumptions):
    """The update's TrainBatch as abstract arrays: `example_micro_batch` widened to train.micro_batches."""
    one = example_micro_batch(config, model_cfg, assumptions)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((config.train.micro_batches, *x.shape[1:]), x.dtype), one)


def _local(n: int, mesh) -> int:
    """How many of n batch rows one device holds (the rows split over data x fsdp where that divides)."""
    spec = sharding.logical_to_spec(("batch",), (n,), mesh)
    return jax.sharding.NamedSharding(mesh, spec).shard_shape((n,))[0]


def make_plan(config, sizes: dict[str, int], assumptions: Assumptions,
              model_cfg: Qwen25VLConfig | None = None) -> Plan:
    """The per-device plan of `config` on a (data, fsdp, tensor) mesh of `sizes`."""
    model_cfg = model_cfg or model_config_of(config)
    method = methods.check(config)
    mesh = abstract_mesh(sizes)
    graphdef, state = _abstract_model(config, model_cfg)
    params = nnx.to_pure_dict(state)
    param_sh = nnx.to_pure_dict(sharding.state_shardings(state, mesh))
    tx = optimizer_from_config(config.optim, total_steps=1)
    opt_sh = ts.optimizer_shardings(tx, params, param_sh, mesh)
    param_bytes = memory.tree_bytes(params, param_sh)
    use_ref = method.rl and config.loss.kl_coef > 0
    batch = abstract_batch(config, model_cfg, assumptions)
    batch_sh = ts.batch_shardings(batch, mesh)
    state_bytes = {
        "parameters": param_bytes,
        "optimizer state": memory.tree_bytes(jax.eval_shape(tx.init, params), opt_sh),
        "reference model": param_bytes if use_ref else 0,
        "gradients": 2 * param_bytes,
        "batch": memory.tree_bytes(batch, batch_sh),
    }
    local = lambda x, s: s.shard_shape(x.shape)  # noqa: E731
    ids, patches = local(batch.response_ids, batch_sh.response_ids), local(batch.inputs.patches,
                                                                          batch_sh.inputs.patches)
    b, g = config.train.batch_size, config.rollout.group_size
    shapes = memory.StepShapes(
        rows=ids[1], prompt_len=batch.inputs.input_ids.shape[2] - ids[2], response_len=ids[2], images=patches[1],
        patches=patches[2], rollout_rows=_local(b * g, mesh), rollout_prompts=_local(b, mesh),
        max_tokens=config.rollout.max_tokens)
    compute = config.model.get("compute_dtype") or config.model.dtype
    numerics = memory.Numerics(compute_bytes=np.dtype(dtype_of(compute)).itemsize, remat=config.model.remat,
                               attention_impl=config.model.attention_impl, logprob_chunk=config.loss.logprob_chunk,
                               fsdp=sizes["fsdp"], tensor=sizes["tensor"])
    rollout = memory.rollout_bytes(model_cfg, shapes, numerics) if config.rollout.engine == "jax" else 0
    n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    description = dict(
        model=config.model.path or "model.tiny", parameters=n_params, dtype=config.model.dtype, compute=compute,
        remat=config.model.remat, attention=config.model.attention_impl, mesh=dict(sizes),
        devices=math.prod(sizes.values()), batch_size=b, group_size=g, micro_batches=config.train.micro_batches,
        rows_per_device=shapes.rows, sequence=shapes.length, prompt_len=shapes.prompt_len,
        response_len=shapes.response_len, images_per_device=shapes.images, patches_per_image=shapes.patches,
        reference=use_ref, engine=config.rollout.engine, image_size=list(assumptions.image_size),
        prompt_tokens=assumptions.prompt_tokens)
    usable = int(assumptions.device_memory_gb * GIB * assumptions.memory_fraction)
    return Plan(description, state_bytes, memory.update_activations(model_cfg, shapes, numerics), rollout, usable)


def _with(config, **changes) -> ml_collections.ConfigDict:
    """A copy of config with dotted fields changed ("model.remat": "full")."""
    c = ml_collections.ConfigDict(config.to_dict())
    for dotted, value in changes.items():
        group, field = dotted.split(".")
        c[group][field] = value
    return c


def _best(candidates, assumptions: Assumptions, model_cfg) -> tuple[str, Plan] | None:
    """The first (mildest) candidate that fits, else the one with the lowest peak."""
    plans = []
    for name, cfg, sizes in candidates:
        plans.append((name, make_plan(cfg, sizes, assumptions, model_cfg)))
        if plans[-1][1].fits:
            return plans[-1]
    return min(plans, key=lambda p: p[1].peak) if plans else None


def knobs(config, sizes: dict[str, int], assumptions: Assumptions, model_cfg=None) -> list[tuple[str, Plan]]:
    """For each knob, the mildest setting that fits (else its best): remat, micro-batches, fsdp on the same
    devices (data -> fsdp), fsdp on more devices, bfloat16 parameters; then, if none fits alone, all of them."""
    model_cfg = model_cfg or model_config_of(config)
    b, replicas, devices = config.train.batch_size, sizes["data"] * sizes["fsdp"], math.prod(sizes.values())
    remats = REMAT_ORDER[REMAT_ORDER.index(config.model.remat) + 1:]
    micro = [m for m in range(config.train.micro_batches + 1, b + 1) if b % m == 0]
    same_devices = [{**sizes, "data": replicas // f, "fsdp": f} for f in range(sizes["fsdp"] + 1, replicas + 1)
                    if replicas % f == 0]
    more_devices = [{**sizes, "fsdp": sizes["fsdp"] * k} for k in (2, 4, 8, 16, 32, 64)]
    mesh_name = lambda m: f"mesh data={m['data']},fsdp={m['fsdp']},tensor={m['tensor']}"  # noqa: E731
    families = [
        [(f"model.remat={r}", _with(config, **{"model.remat": r}), sizes) for r in remats],
        [(f"train.micro_batches={m}", _with(config, **{"train.micro_batches": m}), sizes) for m in micro],
        [(f"{mesh_name(m)} (same devices)", config, m) for m in same_devices],
        [(f"{mesh_name(m)} ({devices * m['fsdp'] // sizes['fsdp']} devices)", config, m) for m in more_devices],
        [("model.dtype=bfloat16", _with(config, **{"model.dtype": "bfloat16"}), sizes)]
        if config.model.dtype == "float32" else [],
    ]
    out = [best for best in (_best(f, assumptions, model_cfg) for f in families) if best is not None]
    if out and not any(p.fits for _, p in out):
        strongest = _with(config, **{"model.remat": "full", "model.dtype": "bfloat16"
                                     if config.model.dtype == "float32" else config.model.dtype})
        mesh = same_devices[-1] if same_devices else sizes
        combined = [(m, s) for s in [mesh] + [{**mesh, "fsdp": mesh["fsdp"] * k} for k in (2, 4, 8, 16, 32, 64)]
                    for m in [config.train.micro_batches] + micro]
        best = _best([(f"all: model.remat=full, model.dtype={strongest.model.dtype}, train.micro_batches={m}, "
                       f"{mesh_name(s)} ({devices * s['fsdp'] * s['data'] // replicas} devices)",
                       _with(strongest, **{"train.micro_batches": m}), s) for m, s in combined],
                     assumptions, model_cfg)
        out.append(best)
    return out


def format_plan(plan: Plan, alternatives: list[tuple[str, Plan]] = (), xla: dict | None = None) -> str:
    d = plan.description
    unit, size = ("GiB", GIB) if plan.peak >= GIB else ("MiB", 1024**2)
    gib = lambda n: f"{n / size:8.2f}"  # noqa: E731
    mesh = ",".join(f"{a}={d['mesh'][a]}" for a in MESH_AXES)
    lines = [
        f"{d['model']}: {d['parameters'] / 1e9:.3f} B parameters in {d['dtype']} (compute {d['compute']}), "
        f"remat={d['remat']}, attention={d['attention']}",
        f"mesh {mesh} ({d['devices']} devices); {d['batch_size']} prompts x G={d['group_size']} in "
        f"{d['micro_batches']} micro-batches: {d['rows_per_device']} rows x {d['sequence']} tokens "
        f"({d['prompt_len']} prompt + {d['response_len']} response) and {d['images_per_device']} images of "
        f"{d['patches_per_image']} patches per device and micro-batch",
        f"assumed: images {d['image_size'][0]}x{d['image_size'][1]}, {d['prompt_tokens']} text tokens per prompt",
        "", f"per device                                                          {unit}",
    ]
    for name, value in plan.state.items():
        if name != "gradients" and name != "batch":
            lines.append(f"  {name:<64}{gib(value)}")
    lines.append(f"  {'persistent (parameters + optimizer + reference)':<64}{gib(plan.persistent)}")
    lines.append(f"  {'gradients (accumulator + one micro-batch)':<64}{gib(plan.state['gradients'])}")
    lines.append(f"  {'batch (all micro-batches)':<64}{gib(plan.state['batch'])}")
    for name, value in plan.activations.items():
        lines.append(f"  {'activations: ' + name:<64}{gib(value)}")
    lines.append(f"  {'update phase (gradients + batch + activations)':<64}{gib(plan.update)}")
    engine = "rollout phase (JAX sampler KV cache)" if d["engine"] == "jax" else f"rollout ({d['engine']}: off-mesh)"
    lines.append(f"  {engine:<64}{gib(plan.rollout)}")
    verdict = "fits" if plan.fits else "does NOT fit"
    lines.append(f"  {'peak = persistent + max(update, rollout)':<64}{gib(plan.peak)}   of {plan.usable / GIB:.1f} "
                 f"GiB usable: {verdict}")
    if xla:
        lines += ["", "XLA (the trainer's step compiled for virtual CPU devices; CPU computes bfloat16 in float32):",
                  f"  {'arguments (parameters, optimizer, reference, batch)':<64}{gib(xla['arguments'])}"
                  f"   plan: {gib(plan.persistent + plan.state['batch']).strip()}",
                  f"  {'temporaries (gradients, activations, everything else)':<64}{gib(xla['temporaries'])}"
                  f"   plan: {gib(plan.state['gradients'] + sum(plan.activations.values())).strip()}"]
    if alternatives:
        lines += ["", "knobs (one at a time, then all together if none suffices):"]
        for name, alt in alternatives:
            lines.append(f"  {name:<62}{gib(alt.peak)}   {'fits' if alt.fits else 'does not fit'}")
    return "\n".join(lines)


def lower_step(config, sizes: dict[str, int], assumptions: Assumptions, model_cfg=None):
    """(compiled step, its abstract arguments): the trainer's own jitted step (`grpo/train_step.py`) lowered and
    compiled on abstract inputs over the first prod(sizes) devices of this process. Nothing is allocated."""
    from syngrpo_jax.parallel.mesh import make_mesh

    n = math.prod(sizes.values())
    if jax.device_count() < n:
        raise ValueError(f"--xla: the mesh needs {n} devices, this process has {jax.device_count()} "
                         f"({jax.default_backend()})")
    mesh = make_mesh(**sizes, devices=jax.devices()[:n])
    model_cfg = model_cfg or model_config_of(config)
    graphdef, state = _abstract_model(config, model_cfg, mesh)
    params = nnx.to_pure_dict(state)
    param_sh = nnx.to_pure_dict(sharding.state_shardings(state, mesh))
    tx = optimizer_from_config(config.optim, total_steps=1)
    opt_sh = ts.optimizer_shardings(tx, params, param_sh, mesh)
    placed = lambda tree, sh: jax.tree.map(  # noqa: E731
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, sh)
    loss = LossConfig.from_config(config)
    if not methods.check(config).rl:
        loss = dataclasses.replace(loss, kl_coef=0.0)
    batch = abstract_batch(config, model_cfg, assumptions)
    step = ts.make_train_step(graphdef, tx, loss, mesh=mesh, param_shardings=param_sh, opt_shardings=opt_sh)
    p = placed(params, param_sh)
    args = (p, placed(jax.eval_shape(tx.init, params), opt_sh), p if loss.kl_coef > 0 else None,
            placed(batch, ts.batch_shardings(batch, mesh)), jax.ShapeDtypeStruct((), jax.random.key(0).dtype))
    return step.lower(*args).compile(), args


def compile_step(config, sizes: dict[str, int], assumptions: Assumptions, model_cfg=None) -> dict[str, int]:
    """XLA's per-device sizes of the trainer's compiled step (see `lower_step`)."""
    stats = lower_step(config, sizes, assumptions, model_cfg)[0].memory_analysis()
    return dict(arguments=int(stats.argument_size_in_bytes), temporaries=int(stats.temp_size_in_bytes),
                outputs=int(stats.output_size_in_bytes), aliased=int(stats.alias_size_in_bytes))


def _image_size(text: str) -> tuple[int, int]:
    w, x, h = text.lower().partition("x")
    if not (x and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise ValueError(f"--image_size={text!r} must be WIDTHxHEIGHT in pixels, e.g. 640x480")
    return int(w), int(h)


def main(argv, config, flag) -> int:
    import sys

    del argv
    try:
        sizes = parse_mesh(flag["mesh"].value, base=config.mesh)
        assumptions = Assumptions(image_size=_image_size(flag["image_size"].value),
                                  prompt_tokens=flag["prompt_tokens"].value,
                                  device_memory_gb=flag["device_memory_gb"].value,
                                  memory_fraction=flag["memory_fraction"].value)
        if flag["xla"].value:
            # Virtual CPU devices for the compile (before anything initialises a backend).
            jax.config.update("jax_platforms", "cpu")
            jax.config.update("jax_num_cpu_devices", math.prod(sizes.values()))
        model_cfg = model_config_of(config)
        plan = make_plan(config, sizes, assumptions, model_cfg)
        alternatives = knobs(config, sizes, assumptions, model_cfg) if (flag["knobs"].value or not plan.fits) else []
        xla = compile_step(config, sizes, assumptions, model_cfg) if flag["xla"].value else None
    except (ValueError, FileNotFoundError) as e:
        print(f"plan: {e}", file=sys.stderr)
        return 2
    print(format_plan(plan, alternatives, xla))
    if flag["json"].value:
        out = dict(plan=plan.to_dict(), knobs=[dict(knob=n, **p.to_dict()) for n, p in alternatives], xla=xla)
        with open(flag["json"].value, "w") as f:
            json.dump(out, f, indent=1)
    return 0


def _define_flags():
    from absl import flags
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "Run config file (configs/*.py[:arg]).")
    return config, dict(
        mesh=flags.DEFINE_string("mesh", "", "data=D,fsdp=F,tensor=T (unnamed axes keep the config's mesh)"),
        device_memory_gb=flags.DEFINE_float("device_memory_gb", 80.0, "memory per device in GiB"),
        memory_fraction=flags.DEFINE_float("memory_fraction", 0.9, "the share of it XLA may use"),
        image_size=flags.DEFINE_string("image_size", "640x480", "training images' WIDTHxHEIGHT before resizing"),
        prompt_tokens=flags.DEFINE_integer("prompt_tokens", 128, "text tokens per prompt, image tokens apart"),
        knobs=flags.DEFINE_bool("knobs", False, "list the knobs even when the plan fits"),
        xla=flags.DEFINE_bool("xla", False, "also compile the trainer's step for virtual CPU devices"),
        json=flags.DEFINE_string("json", "", "also write the plan as JSON to this file"),
    )


if __name__ == "__main__":
    from absl import app

    _config, _flags = _define_flags()
    app.run(lambda argv: main(argv, _config.value, _flags))
