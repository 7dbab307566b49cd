import io
import time

import numpy as np
import pytest
from PIL import Image

from syngrpo_jax.protocol import synthesis as proto
from synth_torch.image_check import sniff_image
from synth_torch.pipeline import Job, SynthesisPipeline, decode_image
from synth_torch.segmentation import Segmenter


def job(helpers, image_bytes, boxes, description="a blue ocean", seed=1, sample_id=0):
    header = proto.unpack_header(proto.synthesize_frames(
        job_id=f"j{sample_id}", sample_id=sample_id, description=description, boxes=boxes, seed=seed,
        image_bytes=b"")[0], proto.Limits())
    request = proto.validate_synthesize(header, proto.Limits())
    _, w, h = sniff_image(image_bytes, proto.Limits())
    return Job(b"peer", request, image_bytes, w, h, time.perf_counter())


def outside(mask_boxes, shape):
    m = np.ones(shape[:2], bool)
    for x0, y0, x1, y1 in mask_boxes:
        m[y0:y1, x0:x1] = False
    return m


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_boxes_exact_and_background_new(helpers, fmt):
    image = helpers.make_image(90, 120)
    data = helpers.png_bytes(image, fmt)
    original = decode_image(data)  # JPEG: the decoded pixels are the originals to keep
    pipe = SynthesisPipeline(helpers.load_config())
    boxes = [(10.4, 5.6, 50.2, 40.0), (70, 30, 119.5, 89.9)]
    (oc,) = pipe.run([job(helpers, data, boxes)], time.perf_counter())
    assert oc.error is None and oc.boxes_verified
    out = np.asarray(Image.open(io.BytesIO(oc.image_png)).convert("RGB"))
    px = [(10, 5, 51, 40), (70, 30, 120, 90)]
    for x0, y0, x1, y1 in px:
        np.testing.assert_array_equal(out[y0:y1, x0:x1], original[y0:y1, x0:x1])
    far = outside([(x0 - 12, y0 - 12, x1 + 12, y1 + 12) for x0, y0, x1, y1 in px], out.shape)
    assert np.abs(out[far].astype(int) - original[far]).mean() > 30
    assert set(oc.timings) == {"queue_wait", "decode", "mask", "backend", "paste", "encode"}


def test_per_job_errors_do_not_sink_the_batch(helpers):
    pipe = SynthesisPipeline(helpers.load_config())
    good = job(helpers, helpers.png_bytes(helpers.make_image(40, 40)), [(0, 0, 10, 10)], sample_id=1)
    off_image = job(helpers, helpers.png_bytes(helpers.make_image(40, 40)), [(50, 50, 60, 60)], sample_id=2)
    truncated = job(helpers, helpers.png_bytes(helpers.make_image(40, 40)), [(0, 0, 10, 10)], sample_id=3)
    truncated.image_bytes = truncated.image_bytes[:60]
    outcomes = pipe.run([good, off_image, truncated], time.perf_counter())
    assert outcomes[0].error is None and outcomes[0].boxes_verified
    assert outcomes[1].error.code == "bad_field" and outcomes[1].error.field == "boxes[0]"
    assert outcomes[2].error.code == "bad_image"


class HalfSegmenter(Segmenter):
    """Foreground = the left half of the image (a stand-in for BEN2's matte)."""

    def foreground(self, images):
        out = []
        for im in images:
            m = np.zeros(im.shape[:2], bool)
            m[:, : im.shape[1] // 2] = True
            out.append(m)
        return out


def test_segmenter_refines_the_kept_region_near_boxes(helpers):
    config = helpers.load_config(**{"mask.dilation_px": 0, "mask.feather_px": 0.0, "segmentation.margin_px": 5})
    pipe = SynthesisPipeline(config, segmenter=HalfSegmenter())
    image = helpers.make_image(60, 80)
    (oc,) = pipe.run([job(helpers, helpers.png_bytes(image), [(20, 20, 30, 30)])], time.perf_counter())
    out = np.asarray(Image.open(io.BytesIO(oc.image_png)).convert("RGB"))
    assert oc.boxes_verified
    np.testing.assert_array_equal(out[15:35, 15:35], image[15:35, 15:35])  # segmented and near the box: kept
    assert not np.array_equal(out[15:35, 40:45], image[15:35, 40:45])  # near the box, not foreground: new
    assert not np.array_equal(out[50:60, 0:10], image[50:60, 0:10])  # foreground far from boxes: new
