"""The procedural backend obeys its vocabulary: each word changes the rendered background in the way
syngrpo_jax.data.descriptions documents, measured on the pixels."""
import numpy as np
import pytest

from syngrpo_jax.data import descriptions as V
from syngrpo_jax.data.backgrounds import render_background

W, H = 96, 80
LUMA = np.array([0.299, 0.587, 0.114])


def render(description, seed=0, w=W, h=H):
    return render_background(description, seed, w, h).astype(np.float64)


def luma(img):
    return img @ LUMA


def constant_along(img, axis):
    return bool(np.all(img == np.take(img, [0], axis=axis)))


def varying_axis(img):
    """The axis the pattern varies along (1: along x, columns differ; 0: along y), asserting it is constant
    along the other."""
    along_x, along_y = constant_along(img, 0), constant_along(img, 1)
    assert along_x != along_y, "expected a pattern constant along exactly one axis"
    return 1 if along_x else 0


def profile(img, axis):
    return luma(img[0] if axis == 1 else img[:, 0])


def smoothness(img):
    """Mean absolute luminance step between neighbouring pixels, relative to the luminance range."""
    y = luma(img)
    steps = np.concatenate([np.abs(np.diff(y, axis=0)).ravel(), np.abs(np.diff(y, axis=1)).ravel()])
    return steps.mean() / max(np.ptp(y), 1e-9)


def test_same_description_and_seed_same_pixels_and_others_differ():
    a = render_background("a snowy street at night", 5, 120, 90)
    assert a.shape == (90, 120, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, render_background("a snowy street at night", 5, 120, 90))
    for other in ("a red desert under a blue sky", "a snowy street at night, striped"):
        assert np.abs(render(other, 5, 120, 90) - a).mean() > 10
    assert np.abs(render("a snowy street at night", 6, 120, 90) - a).mean() > 3


@pytest.mark.parametrize("word", sorted(V.COLOR_WORDS))
def test_colour_words_set_the_colour(word):
    img = render(f"plain {word}")
    np.testing.assert_allclose(img.reshape(-1, 3).mean(0), V.COLOR_WORDS[word], atol=0.5)
    assert img.std(axis=(0, 1)).max() == 0


def test_two_colours_are_the_main_and_secondary_colours_of_a_texture():
    img = render("clean striped red and blue")
    colours = {tuple(int(v) for v in c) for c in img.reshape(-1, 3)}
    assert colours == {V.COLOR_WORDS["red"], V.COLOR_WORDS["blue"]}


@pytest.mark.parametrize("word", sorted(V.BRIGHTNESS_WORDS))
def test_brightness_words_scale_or_lighten(word):
    base = luma(render("plain grass")).mean()
    got = luma(render(f"plain grass {word}")).mean()
    want = base * V.DARK_SCALE if V.BRIGHTNESS_WORDS[word] == "dark" else base + V.BRIGHT_MIX * (255 - base)
    assert abs(got - want) < 1.0 and abs(got - base) > 40


def texture_check(kind, img):
    """The documented look of each texture, measured."""
    if kind == "plain":
        assert img.std(axis=(0, 1)).max() == 0
    elif kind == "gradient":
        p = profile(img, varying_axis(img))
        assert np.all(np.diff(p) >= 0) or np.all(np.diff(p) <= 0)
        assert abs(p[-1] - p[0]) > 20
    elif kind == "striped":
        p = profile(img, varying_axis(img))
        assert len(np.unique(p)) == 2
        runs = 1 + np.count_nonzero(np.diff(p))
        assert runs >= 4  # at least two bands of each colour
    elif kind == "checkered":
        assert not constant_along(img, 0) and not constant_along(img, 1)
        y = luma(img)
        values = np.unique(y)
        assert len(values) == 2
        first = y[0]
        for row in y:  # every row is the first row or its complement: squares
            assert np.array_equal(row, first) or np.array_equal(row, np.where(first == values[0], *values[::-1]))
    elif kind == "wavy":
        assert not constant_along(img, 0) and not constant_along(img, 1)
        assert smoothness(img) < 0.15
        crossings = [np.count_nonzero(np.diff(np.sign(r - r.mean()))) for r in (luma(img)[H // 2], luma(img)[:, W // 2])]
        assert max(crossings) >= 4  # it oscillates
    elif kind == "noisy":
        assert smoothness(img) > 0.25
    elif kind == "mottled":
        assert not constant_along(img, 0) and not constant_along(img, 1)
        assert smoothness(img) < 0.06
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("word", sorted(V.TEXTURE_WORDS))
def test_texture_words_set_the_texture(word):
    kind = V.TEXTURE_WORDS[word]
    for seed in range(3):
        texture_check(kind, render(f"clean sea sand {word}", seed))


def changed_fraction(description, seeds=range(6)):
    base = render("plain white clean")
    return np.mean([np.any(render(f"plain white {description}", s) != base, axis=-1).mean() for s in seeds])


def test_clutter_words_set_the_amount_of_clutter():
    by_word = {w: changed_fraction(w) for w in V.CLUTTER_WORDS}
    levels = {lvl: [by_word[w] for w in V.CLUTTER_WORDS if V.CLUTTER_WORDS[w] == lvl] for lvl in V.CLUTTER_LEVELS}
    assert max(levels["none"]) == 0
    assert 0 < max(levels["sparse"]) < min(levels["normal"])
    assert max(levels["normal"]) < min(levels["dense"])
    assert changed_fraction("") == 0  # plain without a clutter word: no clutter


def test_unset_properties_come_from_the_seed_and_unknown_words_fall_back_to_hashed_colours():
    spec = V.parse("a quiet morning")
    assert spec.colors == () and spec.texture is None and spec.clutter is None and not spec.hard
    images = [render("a quiet morning", s) for s in range(12)]
    assert all(img.std() > 0 for img in images)  # never plain
    assert len({img.mean().round(3) for img in images}) == 12
    other = render("the lazy evening", 0)
    assert np.abs(other.reshape(-1, 3).mean(0) - images[0].reshape(-1, 3).mean(0)).max() > 5


def test_the_later_word_wins():
    assert V.parse("striped then plain").texture == "plain"
    assert V.parse("dark, then bright").brightness == "bright"
    assert V.parse("clean but dense").clutter == "dense"
    assert set(V.vocabulary()) == {"colour", "brightness", "texture", "clutter", "hard"}
