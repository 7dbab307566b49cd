"""Image preprocessing equals transformers' Qwen2-VL image processor (PIL backend) bit for bit."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

from syngrpo_jax.processing.image import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    model_hw,
    num_image_tokens,
    pixels_to_image,
    preprocess_image,
    preprocess_images,
    smart_resize,
)

# (min_pixels, max_pixels): transformers' class defaults, Qwen2.5-VL's preprocessor_config, a narrow band, a
# single allowed area, and a small cap that forces most images down.
PIXEL_SETTINGS = [
    (56 * 56, 28 * 28 * 1280),
    (3136, 12845056),
    (128 * 28 * 28, 256 * 28 * 28),
    (4 * 28 * 28, 4 * 28 * 28),
    (16 * 28 * 28, 64 * 28 * 28),
]
# (height, width): extreme aspect ratios (including exactly 200), tiny (below min_pixels), huge (above
# max_pixels), ordinary, and sizes that are already multiples of 28.
SIZES = [(30, 800), (1000, 40), (28, 5600), (5, 7), (13, 40), (1500, 2100), (224, 224), (333, 517), (56, 84)]


def _random_rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _reference(image, min_pixels, max_pixels):
    out = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)(images=image, return_tensors="np")
    return out["pixel_values"], out["image_grid_thw"]


@pytest.mark.parametrize("min_pixels,max_pixels", PIXEL_SETTINGS)
def test_preprocess_image_equals_transformers(min_pixels, max_pixels):
    rng = np.random.default_rng(min_pixels + max_pixels)
    for h, w in SIZES:
        array = _random_rgb(rng, h, w)
        ref_pv, ref_grid = _reference(Image.fromarray(array), min_pixels, max_pixels)
        for image in (Image.fromarray(array), array):
            pv, grid = preprocess_image(image, min_pixels=min_pixels, max_pixels=max_pixels)
            assert pv.dtype == np.float32 and pv.shape == ref_pv.shape, (h, w)
            assert np.array_equal(pv, ref_pv), (h, w, float(np.abs(pv - ref_pv).max()))
            assert grid == tuple(ref_grid[0].tolist()), (h, w)


def _rgba(rng, h, w):
    alpha = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
    alpha[: h // 2] = 255  # fully opaque and fully transparent regions as well as partial ones
    alpha[h // 2 :, : w // 3] = 0
    return np.concatenate([_random_rgb(rng, h, w), alpha], axis=-1)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: Image.fromarray(_random_rgb(rng, 90, 130)).convert("L"),
        lambda rng: Image.fromarray(_random_rgb(rng, 90, 130)).convert("P"),
        lambda rng: Image.fromarray(_rgba(rng, 90, 130)),
        lambda rng: _rgba(rng, 90, 130),
        lambda rng: Image.fromarray(_random_rgb(rng, 90, 130)).convert("CMYK"),
    ],
    ids=["grayscale", "palette", "rgba_pil", "rgba_array", "cmyk"],
)
def test_colour_modes_equal_transformers(make):
    image = make(np.random.default_rng(7))
    ref_pv, ref_grid = _reference(image, 56 * 56, 28 * 28 * 64)
    pv, grid = preprocess_image(image, min_pixels=56 * 56, max_pixels=28 * 28 * 64)
    assert np.array_equal(pv, ref_pv)
    assert grid == tuple(ref_grid[0].tolist())


def test_preprocess_images_equals_transformers_batch():
    rng = np.random.default_rng(1)
    images = [Image.fromarray(_random_rgb(rng, h, w)) for h, w in [(100, 150), (30, 800), (500, 400)]]
    ref_pv, ref_grid = _reference(images, 56 * 56, 28 * 28 * 256)
    pv, grid = preprocess_images(images, min_pixels=56 * 56, max_pixels=28 * 28 * 256)
    assert np.array_equal(pv, ref_pv)
    assert grid.dtype == np.int64 and np.array_equal(grid, ref_grid)


def test_preprocess_images_empty():
    pv, grid = preprocess_images([], min_pixels=3136, max_pixels=100352)
    assert pv.shape == (0, 3 * 2 * 14 * 14) and pv.dtype == np.float32
    assert grid.shape == (0, 3) and grid.dtype == np.int64


@settings(max_examples=400, deadline=None)
@given(
    height=st.integers(1, 6000),
    width=st.integers(1, 6000),
    factor=st.sampled_from([14, 28, 32, 56]),
    min_pixels=st.integers(1, 2_000_000),
    extra=st.integers(0, 20_000_000),
)
def test_smart_resize_equals_transformers(height, width, factor, min_pixels, extra):
    max_pixels = min_pixels + extra
    try:
        ref = hf_smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError:
        with pytest.raises(ValueError, match="aspect ratio"):
            smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
        return
    assert smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels) == ref


def test_smart_resize_defaults_equal_transformers():
    for h, w in SIZES:
        assert smart_resize(h, w) == hf_smart_resize(h, w)


def test_smart_resize_round_half_to_even():
    # 42 / 28 = 1.5 rounds to 2 and 70 / 28 = 2.5 rounds to 2 under Python's round; transformers relies on it.
    assert smart_resize(42, 70, min_pixels=1, max_pixels=10**9) == (56, 56)


def test_pixel_value_layout_reassembles_the_image():
    """Independent check of the patch order: undo it and compare with a directly resized, normalised image."""
    rng = np.random.default_rng(3)
    array = _random_rgb(rng, 150, 230)
    ps, t, m = 14, 2, 2
    pv, (_, gh, gw) = preprocess_image(array, min_pixels=3136, max_pixels=28 * 28 * 64)
    h, w = model_hw((1, gh, gw))
    resized = np.asarray(Image.fromarray(array).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    expected = (resized - np.asarray(OPENAI_CLIP_MEAN)) / np.asarray(OPENAI_CLIP_STD)
    # row index = ((block_row * blocks_per_row + block_col) * m + row_in_block) * m + col_in_block
    patches = pv.reshape(gh // m, gw // m, m, m, 3, t, ps, ps)
    assert np.array_equal(patches[:, :, :, :, :, 0], patches[:, :, :, :, :, 1])  # the still image, twice
    image = patches[:, :, :, :, :, 0].transpose(0, 2, 5, 1, 3, 6, 4).reshape(h, w, 3)
    np.testing.assert_allclose(image, expected, atol=1e-5)


def test_model_hw_and_token_count():
    pv, grid = preprocess_image(np.zeros((300, 500, 3), np.uint8), min_pixels=3136, max_pixels=28 * 28 * 100)
    assert model_hw(grid) == smart_resize(300, 500, min_pixels=3136, max_pixels=28 * 28 * 100)
    assert num_image_tokens(grid) == pv.shape[0] // 4


def test_aspect_ratio_error_names_the_value():
    with pytest.raises(ValueError, match=r"aspect ratio 201 \(height=10, width=2010\) exceeds 200"):
        smart_resize(10, 2010)
    ok = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match=r"images\[1\]: image aspect ratio 250"):
        preprocess_images([ok, np.zeros((4, 1000, 3), np.uint8)], min_pixels=3136, max_pixels=100352)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(height=0, width=10), "height must be a positive integer, got 0"),
        (dict(height=10, width=10, min_pixels=500, max_pixels=100), "min_pixels=500, max_pixels=100"),
        (dict(height=10, width=10, min_pixels=1.5, max_pixels=100), "must be integers"),
    ],
)
def test_smart_resize_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        smart_resize(**kwargs)


def test_bad_image_arrays():
    with pytest.raises(ValueError, match="dtype must be uint8.*float32"):
        preprocess_image(np.zeros((40, 40, 3), np.float32), min_pixels=3136, max_pixels=100352)
    with pytest.raises(ValueError, match=r"got \(40, 40, 2\)"):
        preprocess_image(np.zeros((40, 40, 2), np.uint8), min_pixels=3136, max_pixels=100352)
    with pytest.raises(TypeError, match="list"):
        preprocess_image([[0]], min_pixels=3136, max_pixels=100352)


@pytest.mark.parametrize("min_pixels,max_pixels", PIXEL_SETTINGS[:3])
def test_pixels_to_image_recovers_the_resized_image_exactly(min_pixels, max_pixels):
    """What an image-only rollout worker (vLLM) is sent: preprocessing it again, here and in transformers'
    processor, gives the original pixel_values bit for bit."""
    rng = np.random.default_rng(7)
    for h, w in [(333, 517), (56, 84), (30, 800), (1500, 2100)]:
        pv, grid = preprocess_image(_random_rgb(rng, h, w), min_pixels=min_pixels, max_pixels=max_pixels)
        image = pixels_to_image(pv, grid)
        assert image.dtype == np.uint8 and image.shape == (*model_hw(grid), 3)
        ours, grid2 = preprocess_image(image, min_pixels=min_pixels, max_pixels=max_pixels)
        ref, ref_grid = _reference(Image.fromarray(image), min_pixels, max_pixels)
        assert grid2 == grid and ref_grid.tolist() == [list(grid)]
        np.testing.assert_array_equal(ours, pv)
        np.testing.assert_array_equal(ref, pv)


def test_pixels_to_image_names_a_mismatched_grid():
    pv, grid = preprocess_image(np.zeros((56, 84, 3), np.uint8), min_pixels=56 * 56, max_pixels=56 * 84)
    with pytest.raises(ValueError, match="grid_thw"):
        pixels_to_image(pv, (1, grid[1] + 2, grid[2]))
