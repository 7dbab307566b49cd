"""The Flax Qwen2.5-VL against transformers' PyTorch implementation (float32, tiny random configs)."""
import numpy as np
import pytest
import torch

from hf_reference import (CONFIGS, IDS, build_hf_model, hf_logits, image_processor, random_images, token_batch,
                          vision_batch)
from syngrpo_jax.models import qwen2_5_vl
from syngrpo_jax.models.tiny import tiny_config
from syngrpo_jax.models.positions import rope_index

# Three images of different sizes; each spans several 56-px attention windows (one is tall and thin).
IMAGE_SIZES = [(112, 112), (84, 150), (200, 60)]
SAMPLES = [[], [0], [1, 2]]  # a padded batch of 3 prompts holding 0, 1 and 2 images


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, tmp_path_factory):
    config = CONFIGS[request.param]
    hf = build_hf_model(config)
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path)
    return config, hf, qwen2_5_vl.from_pretrained(path)


@pytest.fixture(scope="module")
def vision():
    return vision_batch(random_images(IMAGE_SIZES))


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_logits_match_transformers(pair, vision, padding_side):
    config, hf, model = pair
    pixel_values, grid = vision
    ids, mask, _ = token_batch(config, grid, SAMPLES, padding_side=padding_side)
    ref = hf_logits(hf, ids, mask, pixel_values, grid)
    ours = np.asarray(model(ids, mask, pixel_values, grid))
    valid = mask.astype(bool)
    assert ours.shape == ref.shape
    assert np.abs(ref[valid]).max() > 1.0  # the reference is not vanishingly small
    np.testing.assert_allclose(ours[valid], ref[valid], atol=1e-4, rtol=0)


def test_vision_features_match_transformers(pair, vision):
    _, hf, model = pair
    pixel_values, grid = vision
    with torch.no_grad():
        ref = hf.model.get_image_features(torch.tensor(pixel_values), torch.tensor(grid)).pooler_output
    ours = model.vision_features(pixel_values, grid)
    assert len(ours) == len(ref) == len(IMAGE_SIZES)
    for a, b in zip(ours, ref):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=0)


def test_text_only_batch(pair):
    config, hf, model = pair
    ids, mask, _ = token_batch(config, np.zeros((0, 3), np.int64), [[], []], padding_side="right", seed=3,
                               text_lens=[9, 5])
    ref = hf_logits(hf, ids, mask)
    ours = np.asarray(model(ids, mask))
    valid = mask.astype(bool)
    np.testing.assert_allclose(ours[valid], ref[valid], atol=1e-4, rtol=0)


def test_wrong_positions_are_detected(pair, vision):
    """The parity check is sensitive: flat 1-D positions (no M-RoPE) put the logits far outside tolerance."""
    config, hf, model = pair
    pixel_values, grid = vision
    ids, mask, _ = token_batch(config, grid, SAMPLES)
    inputs = qwen2_5_vl.prepare_inputs(config, ids, mask, pixel_values, grid)
    flat = np.broadcast_to(np.cumsum(mask, axis=1)[None] - 1, inputs.position_ids.shape).astype(np.int32)
    wrong = inputs._replace(position_ids=np.where(mask[None] > 0, flat, 0))
    logits = np.asarray(model.logits(model.hidden_states(wrong)))
    ref = hf_logits(hf, ids, mask, pixel_values, grid)
    assert np.abs(logits - ref)[mask.astype(bool)].max() > 1e-2


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("seed", range(4))
def test_rope_index_equals_transformers(pair, padding_side, seed):
    config, hf, _ = pair
    rng = np.random.default_rng(seed)
    sizes = [tuple(int(v) for v in rng.integers(28, 260, size=2)) for _ in range(4)]
    _, grid = vision_batch(random_images(sizes, seed=seed))
    samples = [[], [0], [1, 2, 3]] if seed % 2 == 0 else [[0, 1], [], [2], [3]]
    ids, mask, mm = token_batch(config, grid, samples, padding_side=padding_side, seed=seed)
    ref_pos, ref_delta = hf.model.get_rope_index(torch.tensor(ids), torch.tensor(mm), image_grid_thw=torch.tensor(grid),
                                                 attention_mask=torch.tensor(mask))
    pos, delta = rope_index(ids, grid, image_token_id=config.image_token_id,
                            spatial_merge_size=config.vision.spatial_merge_size, attention_mask=mask)
    np.testing.assert_array_equal(pos, ref_pos.numpy())
    np.testing.assert_array_equal(delta, ref_delta.numpy().reshape(-1))


@pytest.fixture(scope="module")
def real_windows(tmp_path_factory):
    """Tiny widths with the released window layout (112-px windows, full attention in the middle block)."""
    config = tiny_config(**IDS, window_size=112, vision_depth=3, fullatt_block_indexes=(1,))
    hf = build_hf_model(config, seed=4)
    path = tmp_path_factory.mktemp("real_windows")
    hf.save_pretrained(path)
    return hf, qwen2_5_vl.from_pretrained(path)


@pytest.mark.slow
@pytest.mark.parametrize("side", [448, 896, 1344])
def test_vision_tower_matches_transformers_at_real_sizes(real_windows, side):
    """Real image sizes (1,024 to 9,216 patches in 16 to 144 windows): within 1e-4 of the largest feature."""
    hf, model = real_windows
    out = image_processor(max_pixels=side * side)(images=random_images([(side, side)], seed=side),
                                                  return_tensors="np")
    pixel_values, grid = out["pixel_values"], out["image_grid_thw"]
    assert grid.tolist() == [[1, side // 14, side // 14]]
    with torch.no_grad():
        ref = hf.model.get_image_features(torch.tensor(pixel_values), torch.tensor(grid)).pooler_output[0].numpy()
    ours = model.vision_features(pixel_values, grid)[0]
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4 * np.abs(ref).max(), rtol=0)
