"""Qwen2.5-VL architecture config, parsed from (and written back to) an HF `config.json`.

Two on-disk layouts exist and both load: the hub's original flat layout (text fields at the top level,
`rope_scaling: {"type": "mrope", ...}`, vision `in_chans`) and transformers 5's nested layout (`text_config`,
`rope_parameters`). Fields this implementation does not support (sliding-window attention, non-default rope
types) are rejected with the field and its value rather than silently ignored.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

_ACTIVATIONS = ("silu", "gelu", "gelu_pytorch_tanh", "quick_gelu")


class ConfigError(ValueError):
    """A config.json that this implementation cannot run faithfully."""


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    depth: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    out_hidden_size: int
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    window_size: int = 112
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    hidden_act: str = "silu"
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6  # hard-coded in the reference vision blocks and merger

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Length of one flattened patch row of `pixel_values`: C * T * p * p."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def merge_unit(self) -> int:
        return self.spatial_merge_size**2

    @property
    def window_merged(self) -> int:
        """Window side in merged tokens (window_size / spatial_merge_size / patch_size)."""
        return self.window_size // self.spatial_merge_size // self.patch_size


@dataclasses.dataclass(frozen=True)
class TextConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    mrope_section: tuple[int, ...]
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    hidden_act: str = "silu"
    max_position_embeddings: int = 128000

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclasses.dataclass(frozen=True)
class Qwen25VLConfig:
    vision: VisionConfig
    text: TextConfig
    image_token_id: int
    video_token_id: int
    vision_start_token_id: int
    vision_end_token_id: int
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    # The config.json this came from (written back on save so unknown fields survive a round trip).
    hf_dict: dict | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        _validate(self)

    @property
    def vision_token_ids(self) -> tuple[int, ...]:
        """Placeholder and delimiter tokens of images and videos: a response never contains them, so every
        rollout engine bans them and the trainer's policy distribution excludes them (renormalised over the
        rest), which keeps the sampler's and the trainer's log-probs the same quantity."""
        return self.image_token_id, self.video_token_id, self.vision_start_token_id, self.vision_end_token_id

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> "Qwen25VLConfig":
        return _from_hf_dict(d)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "Qwen25VLConfig":
        file = os.path.join(path, "config.json")
        if not os.path.isfile(file):
            raise FileNotFoundError(f"no config.json in model directory {os.fspath(path)!r}")
        with open(file) as f:
            return cls.from_hf_dict(json.load(f))

    def to_hf_dict(self, dtype: str | None = None) -> dict[str, Any]:
        """config.json contents (transformers 5 nested layout unless this came from a file)."""
        d = json.loads(json.dumps(self.hf_dict)) if self.hf_dict is not None else _to_nested_dict(self)
        if dtype is not None:
            d["torch_dtype" if "torch_dtype" in d else "dtype"] = dtype
        return d


def _validate(c: Qwen25VLConfig) -> None:
    t, v = c.text, c.vision
    checks = [
        ("text_config.hidden_size", t.hidden_size, t.hidden_size % t.num_attention_heads == 0,
         f"must be divisible by num_attention_heads={t.num_attention_heads}"),
        ("text_config.num_key_value_heads", t.num_key_value_heads,
         t.num_key_value_heads > 0 and t.num_attention_heads % t.num_key_value_heads == 0,
         f"must divide num_attention_heads={t.num_attention_heads}"),
        ("text_config.mrope_section", list(t.mrope_section),
         len(t.mrope_section) == 3 and sum(t.mrope_section) == t.head_dim // 2,
         f"must be 3 sections summing to head_dim/2={t.head_dim // 2}"),
        ("text_config.hidden_act", t.hidden_act, t.hidden_act in _ACTIVATIONS, f"supported: {_ACTIVATIONS}"),
        ("vision_config.hidden_act", v.hidden_act, v.hidden_act in _ACTIVATIONS, f"supported: {_ACTIVATIONS}"),
        ("vision_config.hidden_size", v.hidden_size, v.hidden_size % v.num_heads == 0 and v.head_dim % 4 == 0,
         f"must be divisible by num_heads={v.num_heads} with head_dim a multiple of 4"),
        ("vision_config.window_size", v.window_size, v.window_merged >= 1,
         f"must be at least spatial_merge_size*patch_size={v.spatial_merge_size * v.patch_size}"),
        ("vision_config.fullatt_block_indexes", list(v.fullatt_block_indexes),
         all(0 <= i < v.depth for i in v.fullatt_block_indexes), f"must index blocks 0..{v.depth - 1}"),
        ("vision_config.out_hidden_size", v.out_hidden_size, v.out_hidden_size == t.hidden_size,
         f"must equal text hidden_size={t.hidden_size}"),
    ]
    for field, value, ok, why in checks:
        if not ok:
            raise ConfigError(f"{field}={value!r}: {why}")


def _rope_dict(d: dict) -> dict:
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    return dict(rope)


def _from_hf_dict(d: dict[str, Any]) -> Qwen25VLConfig:
    if d.get("model_type") not in (None, "qwen2_5_vl"):
        raise ConfigError(f"config.json model_type={d.get('model_type')!r}: expected 'qwen2_5_vl'")
    nested = isinstance(d.get("text_config"), dict)
    td = dict(d["text_config"]) if nested else dict(d)
    vd = dict(d.get("vision_config") or {})
    prefix = "text_config." if nested else ""

    if td.get("use_sliding_window"):
        raise ConfigError(f"{prefix}use_sliding_window={td['use_sliding_window']!r}: sliding-window attention "
                          "is not supported (Qwen2.5-VL checkpoints ship it disabled)")
    rope = _rope_dict(td) or _rope_dict(d)
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "mrope"):
        raise ConfigError(f"{prefix}rope_parameters.rope_type={rope_type!r}: only default M-RoPE is supported")
    if "mrope_section" not in rope:
        raise ConfigError(f"{prefix}rope_parameters.mrope_section is missing")
    rope_theta = rope.get("rope_theta", td.get("rope_theta", d.get("rope_theta", 1_000_000.0)))
    vrope = dict(vd.get("rope_parameters") or {})
    if vrope.get("rope_type", "axial") != "axial":
        raise ConfigError(f"vision_config.rope_parameters.rope_type={vrope['rope_type']!r}: only axial is supported")

    def need(src: dict, key: str, where: str):
        if key not in src:
            raise ConfigError(f"{where}{key} is missing from config.json")
        return src[key]

    text = TextConfig(
        vocab_size=need(td, "vocab_size", prefix),
        hidden_size=need(td, "hidden_size", prefix),
        intermediate_size=need(td, "intermediate_size", prefix),
        num_hidden_layers=need(td, "num_hidden_layers", prefix),
        num_attention_heads=need(td, "num_attention_heads", prefix),
        num_key_value_heads=td.get("num_key_value_heads") or td["num_attention_heads"],
        mrope_section=tuple(int(s) for s in rope["mrope_section"]),
        rope_theta=float(rope_theta),
        rms_norm_eps=float(td.get("rms_norm_eps", 1e-6)),
        hidden_act=td.get("hidden_act", "silu"),
        max_position_embeddings=int(td.get("max_position_embeddings", 128000)),
    )
    vision = VisionConfig(
        depth=need(vd, "depth", "vision_config."),
        hidden_size=need(vd, "hidden_size", "vision_config."),
        intermediate_size=need(vd, "intermediate_size", "vision_config."),
        num_heads=need(vd, "num_heads", "vision_config."),
        out_hidden_size=vd.get("out_hidden_size", text.hidden_size),
        in_channels=vd.get("in_channels", vd.get("in_chans", 3)),
        patch_size=vd.get("patch_size", 14),
        temporal_patch_size=vd.get("temporal_patch_size", 2),
        spatial_merge_size=vd.get("spatial_merge_size", 2),
        window_size=vd.get("window_size", 112),
        fullatt_block_indexes=tuple(vd.get("fullatt_block_indexes", (7, 15, 23, 31))),
        hidden_act=vd.get("hidden_act", "silu"),
        rope_theta=float(vrope.get("rope_theta", 10000.0)),
    )
    tie = bool(d.get("tie_word_embeddings", False) or td.get("tie_word_embeddings", False))
    return Qwen25VLConfig(
        vision=vision,
        text=text,
        image_token_id=d.get("image_token_id", 151655),
        video_token_id=d.get("video_token_id", 151656),
        vision_start_token_id=d.get("vision_start_token_id", 151652),
        vision_end_token_id=d.get("vision_end_token_id", 151653),
        tie_word_embeddings=tie,
        bos_token_id=td.get("bos_token_id", d.get("bos_token_id")),
        eos_token_id=td.get("eos_token_id", d.get("eos_token_id")),
        pad_token_id=td.get("pad_token_id", d.get("pad_token_id")),
        hf_dict=json.loads(json.dumps(d)),
    )


def _to_nested_dict(c: Qwen25VLConfig) -> dict[str, Any]:
    t, v = c.text, c.vision
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "image_token_id": c.image_token_id,
        "video_token_id": c.video_token_id,
        "vision_start_token_id": c.vision_start_token_id,
        "vision_end_token_id": c.vision_end_token_id,
        "tie_word_embeddings": c.tie_word_embeddings,
        "text_config": {
            "model_type": "qwen2_5_vl_text",
            "vocab_size": t.vocab_size,
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads,
            "hidden_act": t.hidden_act,
            "rms_norm_eps": t.rms_norm_eps,
            "max_position_embeddings": t.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": t.rope_theta,
                                "mrope_section": list(t.mrope_section)},
            "use_sliding_window": False,
            "bos_token_id": c.bos_token_id,
            "eos_token_id": c.eos_token_id,
            "pad_token_id": c.pad_token_id,
            "tie_word_embeddings": c.tie_word_embeddings,
        },
        "vision_config": {
            "model_type": "qwen2_5_vl_vision",
            "depth": v.depth,
            "hidden_size": v.hidden_size,
            "intermediate_size": v.intermediate_size,
            "num_heads": v.num_heads,
            "out_hidden_size": v.out_hidden_size,
            "in_channels": v.in_channels,
            "patch_size": v.patch_size,
            "temporal_patch_size": v.temporal_patch_size,
            "spatial_merge_size": v.spatial_merge_size,
            "window_size": v.window_size,
            "fullatt_block_indexes": list(v.fullatt_block_indexes),
            "hidden_act": v.hidden_act,
            "rope_parameters": {"rope_type": "axial", "rope_theta": v.rope_theta},
        },
    }
