import numpy as np

from syngrpo_jax.data.complexity import background_complexity, background_mask, bytes_per_pixel, edge_density
from syngrpo_jax.data.backgrounds import render_background


def test_edge_density_counts_the_pixels_beside_a_step():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, 5:] = 200  # one vertical edge: the pixels of column 4 differ from their right neighbour
    assert edge_density(img) == 10 / 100
    img[7:, :] = 255  # rows 7-9 become one colour: the vertical edge is left in rows 0-6 only, and row 6
    assert edge_density(img) == (7 + 10 - 1) / 100  # differs from row 7 everywhere; pixel (6, 4) is on both
    assert edge_density(np.full((5, 5, 3), 90, np.uint8)) == 0.0


def test_background_mask_leaves_out_the_boxes_rounded_outward():
    m = background_mask([(1.5, 2.0, 3.2, 4.0)], 6, 6)
    assert (~m).sum() == 3 * 2 and not m[2, 1] and not m[3, 3] and m[4, 1] and m[2, 4]


def test_bytes_per_pixel_of_the_background_only():
    rng = np.random.default_rng(0)
    plain = np.full((40, 40, 3), 200, np.uint8)
    inside_noisy = plain.copy()
    inside_noisy[10:20, 10:20] = rng.integers(0, 256, (10, 10, 3))
    mask = background_mask([(10, 10, 20, 20)], 40, 40)
    assert bytes_per_pixel(inside_noisy, mask) == bytes_per_pixel(plain, mask)  # the object is not counted
    assert bytes_per_pixel(inside_noisy) > 2 * bytes_per_pixel(plain)


def test_complexity_grows_with_texture_and_clutter():
    def measure(description):
        img = render_background(description, 0, 112, 112)
        return background_complexity(img, [(40, 40, 60, 60)])

    plain = measure("plain snow")
    clean = [measure(f"{t} sky sand clean") for t in ("gradient", "striped", "wavy")]
    cluttered = [measure(f"{t} sky sand dense") for t in ("gradient", "striped", "wavy")]
    noisy = measure("noisy sky sand dense")
    for key in ("bytes_per_pixel", "edge_density"):
        assert plain[key] <= min(v[key] for v in clean)
        for a, b in zip(clean, cluttered):
            assert b[key] > a[key], key  # clutter adds complexity to every texture
        assert noisy[key] > max(v[key] for v in cluttered) and noisy[key] > 5 * max(plain[key], 1e-3)


def test_samples_complexity_is_the_mean_over_the_samples_images(tmp_path):
    from PIL import Image

    from syngrpo_jax.data.complexity import samples_complexity
    from syngrpo_jax.data.sample import Sample

    rng = np.random.default_rng(0)
    images = [np.full((48, 64, 3), 200, np.uint8), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)]
    box = [10.0, 8.0, 30.0, 28.0]
    samples = []
    for i, im in enumerate(images):
        path = str(tmp_path / f"{i}.png")
        Image.fromarray(im).save(path)
        samples.append(Sample(sample_id=str(i), task="rec", image_path=path, query="the shape", boxes=[box],
                              labels=["the shape"]))
    got = samples_complexity(samples)
    each = [background_complexity(im, [box]) for im in images]
    for k in ("bytes_per_pixel", "edge_density"):
        assert got[k] == np.mean([e[k] for e in each])
    assert each[0]["edge_density"] == 0.0 and each[1]["edge_density"] > 0.5
    assert samples_complexity([]) == {}
