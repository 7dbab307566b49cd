"""The memory plan: exact state bytes against a hand count, XLA's compiled sizes as a cross-check, bad input."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from syngrpo_jax.parallel import plan as plan_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = 1024**3


def rec_config(arg: str):
    spec = importlib.util.spec_from_file_location("rec_config", os.path.join(REPO, "configs", "rec.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def qwen2_5_vl_parameters(vocab, d, f, layers, heads, kv_heads, tied, vision_depth=32, dv=1280, fv=3420,
                          patch_dim=3 * 2 * 14 * 14):
    """Parameter count of Qwen2.5-VL from its architecture, written out (HF module by module)."""
    hd = d // heads
    attn = d * heads * hd + heads * hd + 2 * (d * kv_heads * hd + kv_heads * hd) + heads * hd * d  # q k v (bias), o
    text_layer = 2 * d + attn + 3 * d * f  # two RMSNorms, attention, SwiGLU
    text = vocab * d + layers * text_layer + d + (0 if tied else d * vocab)  # embed, layers, final norm, lm_head
    vision_block = 2 * dv + (dv * 3 * dv + 3 * dv) + (dv * dv + dv) + 2 * (dv * fv + fv) + (fv * dv + dv)
    merger = dv + (4 * dv * 4 * dv + 4 * dv) + (4 * dv * d + d)  # ln_q, mlp.0, mlp.2
    return text + patch_dim * dv + vision_depth * vision_block + merger  # patch embedding: Conv3d without bias


# The released checkpoints' shapes and their published parameter counts (transformers' model, meta device).
RELEASED = {
    "qwen2_5_vl_3b": (dict(vocab=151936, d=2048, f=11008, layers=36, heads=16, kv_heads=2, tied=True), 3_754_622_976),
    "qwen2_5_vl_7b": (dict(vocab=152064, d=3584, f=18944, layers=28, heads=28, kv_heads=4, tied=False),
                      8_292_166_656),
}


@pytest.mark.parametrize("model", sorted(RELEASED))
def test_fsdp4_plan_matches_hand_count(model):
    shape, published = RELEASED[model]
    count = qwen2_5_vl_parameters(**shape)
    assert count == published
    config = rec_config(f"model={model}")  # the paper setting: bfloat16 parameters, kl_coef 0.04
    assert config.model.dtype == "bfloat16" and config.loss.kl_coef > 0
    plan = plan_lib.make_plan(config, dict(data=1, fsdp=4, tensor=1), plan_lib.Assumptions())
    assert plan.description["parameters"] == count
    params = count * 2 / 4  # bfloat16, divided over 4 devices
    assert plan.state["parameters"] == pytest.approx(params, rel=0.01)
    assert plan.state["optimizer state"] == pytest.approx(2 * params, rel=0.01)  # AdamW mu and nu, bfloat16
    assert plan.state["reference model"] == plan.state["parameters"]
    assert plan.state["gradients"] == 2 * plan.state["parameters"]
    # Without the KL term there is no reference model; float32 parameters double everything.
    config.loss.kl_coef = 0.0
    config.model.dtype = "float32"
    plan = plan_lib.make_plan(config, dict(data=1, fsdp=4, tensor=1), plan_lib.Assumptions())
    assert plan.state["reference model"] == 0
    assert plan.state["parameters"] == pytest.approx(2 * params, rel=0.01)
    assert plan.state["optimizer state"] == pytest.approx(4 * params, rel=0.01)


def test_sharding_rules_shape_the_plan():
    """fsdp splits the embed dimensions, data does not; indivisible dimensions stay replicated."""
    config = rec_config("model=qwen2_5_vl_3b")
    one = plan_lib.make_plan(config, dict(data=1, fsdp=1, tensor=1), plan_lib.Assumptions())
    data4 = plan_lib.make_plan(config, dict(data=4, fsdp=1, tensor=1), plan_lib.Assumptions())
    fsdp3 = plan_lib.make_plan(config, dict(data=1, fsdp=3, tensor=1), plan_lib.Assumptions())
    assert data4.state["parameters"] == one.state["parameters"]
    # 3 divides no width of this model (2048, 1280, 5120): everything stays whole on every device.
    assert fsdp3.state["parameters"] == one.state["parameters"]
    assert data4.description["rows_per_device"] == one.description["rows_per_device"] // 4


@pytest.mark.parametrize("text, message", [
    ("data=1,fsdp=eight,tensor=1", "mesh.fsdp='eight'"),
    ("fsdp=0", "mesh.fsdp='0'"),
    ("fsdp", "mesh.fsdp=''"),
    ("pipeline=2", "axis 'pipeline'"),
])
def test_bad_mesh_names_the_field_and_value(text, message):
    with pytest.raises(ValueError, match="--mesh: .*" + message.replace("(", r"\(")):
        plan_lib.parse_mesh(text, base=dict(data=1, fsdp=1, tensor=1))


def test_config_mesh_with_a_free_axis_needs_sizes():
    config = rec_config("model=qwen2_5_vl_3b")
    assert config.mesh.fsdp == -1
    with pytest.raises(ValueError, match=r"mesh.fsdp=-1"):
        plan_lib.parse_mesh("data=1", base=config.mesh)
    assert plan_lib.parse_mesh("fsdp=8", base=config.mesh) == dict(data=1, fsdp=8, tensor=1)


def test_cli(tmp_path):
    """The entry point: a bad --mesh exits 2 naming it; 7B on one 80 GiB device does not fit, and the knobs
    name a setting that does."""
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "syngrpo_jax.parallel.plan", "--config=configs/rec.py:model=qwen2_5_vl_7b"]
    bad = subprocess.run(cmd + ["--mesh=data=1,fsdp=x,tensor=1"], cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "mesh.fsdp='x'" in bad.stderr, bad.stderr
    out = tmp_path / "plan.json"
    ok = subprocess.run(cmd + ["--mesh=data=1,fsdp=1,tensor=1", "--device_memory_gb=80", f"--json={out}"],
                        cwd=REPO, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "does NOT fit" in ok.stdout
    result = json.loads(out.read_text())
    assert not result["plan"]["fits"]
    assert result["plan"]["peak"] > result["plan"]["usable"] == int(80 * GIB * 0.9)
    fitting = [k["knob"] for k in result["knobs"] if k["fits"]]
    assert any(k.startswith("mesh data=1,fsdp=2") for k in fitting), result["knobs"]
    assert not any(k.startswith("train.micro_batches") for k in fitting)  # 7B's state alone exceeds one device


@pytest.mark.slow
@pytest.mark.parametrize("remat, band", [("full", (0.9, 1.35)), ("none", (0.75, 1.1))])
def test_plan_against_xla_compiled_step(remat, band):
    """The trainer's own step, compiled for 4 CPU devices on abstract 3B-shaped inputs: its argument bytes are
    the plan's placed state exactly, and its temporaries are the plan's gradients + activation estimate within
    the band measured when the estimate was written (float32: the CPU backend does not widen it)."""
    config = rec_config("model=qwen2_5_vl_3b")
    config.model.dtype = "float32"
    config.model.remat = remat
    sizes = dict(data=1, fsdp=4, tensor=1)
    assumptions = plan_lib.Assumptions()
    plan = plan_lib.make_plan(config, sizes, assumptions)
    xla = plan_lib.compile_step(config, sizes, assumptions)
    assert xla["arguments"] == pytest.approx(plan.persistent + plan.state["batch"], rel=0.01)
    ratio = (plan.state["gradients"] + sum(plan.activations.values())) / xla["temporaries"]
    assert band[0] <= ratio <= band[1], ratio
