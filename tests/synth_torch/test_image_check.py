"""The bounded structural image checks: valid files of every common kind read as Pillow reads them; the hostile
files of issue 11 and malformed ones are refused, each naming the limit or the defect, in bounded time."""
import io
import time

import numpy as np
import pytest
from PIL import Image

from syngrpo_jax.protocol import synthesis as proto
from synth_torch.image_check import check_scans, sniff_image
from synth_torch.pipeline import encode_png

LIMITS = proto.Limits()


def _saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def valid_files(helpers):
    rgb = Image.fromarray(helpers.make_image(37, 53))
    return {
        "png_rgb": _saved(rgb, "PNG"),
        "png_rgba": _saved(rgb.convert("RGBA"), "PNG"),
        "png_gray": _saved(rgb.convert("L"), "PNG"),
        "png_palette": _saved(rgb.convert("P"), "PNG"),
        "png_16bit": _saved(Image.fromarray(np.arange(37 * 53, dtype=np.uint16).reshape(37, 53)), "PNG"),
        "png_text": _saved(rgb, "PNG", pnginfo=_pnginfo()),
        "png_server_encoder": encode_png(helpers.make_image(37, 53)),
        "jpeg_baseline": _saved(rgb, "JPEG"),
        "jpeg_progressive": _saved(rgb, "JPEG", progressive=True),
        "jpeg_optimized_444": _saved(rgb, "JPEG", optimize=True, subsampling=0, quality=95),
        "jpeg_gray": _saved(rgb.convert("L"), "JPEG"),
        "jpeg_cmyk": _saved(rgb.convert("CMYK"), "JPEG"),
        "jpeg_exif_icc": _saved(rgb, "JPEG", exif=_exif(), icc_profile=bytes(range(256)) * 40),
        "jpeg_restart_markers": _saved(rgb, "JPEG", restart_marker_blocks=1),
    }


def _pnginfo():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 3000, zip=True)
    return info


def _exif():
    exif = Image.Exif()
    exif[0x010F] = "camera\xff\xd9\xff\xda"  # marker-like bytes inside a segment must not confuse the walk
    return exif


def test_valid_files_read_like_pillow(helpers):
    for name, data in valid_files(helpers).items():
        with Image.open(io.BytesIO(data)) as img:
            expected = (img.format.lower(), *img.size)
        assert sniff_image(data, LIMITS) == sniff_image(memoryview(data), LIMITS) == expected, name


def test_format_and_pixel_limit(helpers):
    with pytest.raises(proto.ProtocolError) as info:
        sniff_image(helpers.png_bytes(helpers.make_image(20, 20)), proto.Limits(max_image_pixels=100))
    assert info.value.limit == "max_image_pixels" and "20x20" in info.value.message
    bmp = _saved(Image.fromarray(helpers.make_image(8, 8)), "BMP")
    with pytest.raises(proto.ProtocolError, match="starting b.BM.*neither PNG nor JPEG"):
        sniff_image(bmp, LIMITS)
    with pytest.raises(proto.ProtocolError, match="empty"):
        sniff_image(b"", LIMITS)


def _refused(data, limits=LIMITS, check=sniff_image):
    t0 = time.perf_counter()
    with pytest.raises(proto.ProtocolError) as info:
        check(data, limits)
    return info.value, time.perf_counter() - t0


def test_valid_files_pass_the_scan_check(helpers):
    for name, data in valid_files(helpers).items():
        check_scans(data, LIMITS)  # the EXIF one holds a thumbnail-like FF DA / FF D9 before the first scan
        check_scans(memoryview(data), LIMITS)


def test_scan_bomb_refused_by_scan_count(helpers):
    bomb = helpers.jpeg_scan_bomb(1024, 1024, repeats=200)
    assert sniff_image(bomb, LIMITS) == ("jpeg", 1024, 1024)  # a well-formed header...
    err, seconds = _refused(bomb, check=check_scans)  # ...but 210 scans
    assert err.code == "limit_exceeded" and err.limit == "max_jpeg_scans" and err.field == "image"
    assert "210" in err.message
    ten_scans = helpers.progressive_jpeg(1024, 1024)
    check_scans(ten_scans, LIMITS)
    check_scans(ten_scans, proto.Limits(max_jpeg_scans=10))
    assert _refused(ten_scans, proto.Limits(max_jpeg_scans=9), check_scans)[0].limit == "max_jpeg_scans"


def test_many_chunks_and_many_markers_refused_in_bounded_time(helpers):
    """32 MB of empty chunks / COM markers (the old check walked all of them for 8.6 s / 3.4 s)."""
    err, seconds = _refused(helpers.png_many_chunks())
    assert err.limit == "max_png_chunks" and seconds < 0.1, seconds
    err, seconds = _refused(helpers.jpeg_many_markers())
    assert err.limit == "max_jpeg_markers" and seconds < 0.1, seconds
    data = helpers.png_many_chunks(12 * 8000)
    n = data.count(b"prVt") + 3  # the fillers, IHDR, IDAT, IEND: ~8,000 chunks, under the default limit
    assert sniff_image(data, LIMITS)[0] == sniff_image(data, proto.Limits(max_png_chunks=n))[0] == "png"
    assert _refused(data, proto.Limits(max_png_chunks=n - 1))[0].limit == "max_png_chunks"


def test_bytes_after_the_image_end_are_refused(helpers):
    png = helpers.png_bytes(helpers.make_image(16, 16))
    jpeg = helpers.png_bytes(helpers.make_image(16, 16), "JPEG")
    for data, what in ((png + b"\0" * 1000, "IEND"), (jpeg + b"\0" * 1000, "end-of-image")):
        err, _ = _refused(data)
        assert err.code == "bad_image" and what in err.message and "follow" in err.message
    padded = jpeg[:-2] + b"\0" * 1000 + jpeg[-2:]  # padding inside the scan, ending FF D9: the decoder skips it
    sniff_image(padded, LIMITS)
    twice = jpeg + jpeg  # a second image after the end of the first
    err, _ = _refused(twice, check=check_scans)
    assert err.code == "bad_image" and "follow the JPEG's end-of-image" in err.message


@pytest.mark.parametrize("mutate, message", [
    (lambda png, jpeg: png[:-12], "truncated"),
    (lambda png, jpeg: png[:8] + png[33:], "IHDR"),
    (lambda png, jpeg: png[:33] + png[-12:], "IDAT"),
    (lambda png, jpeg: png[:8] + b"\xff\xff\xff\xff" + png[12:], "past the end"),
    (lambda png, jpeg: jpeg[:-2], "does not end with the end-of-image"),
    (lambda png, jpeg: jpeg[:2] + b"\x00" + jpeg[2:], "expected a marker"),
    (lambda png, jpeg: jpeg[:2] + b"\xff\xd9" + jpeg[2:], "before its first scan"),
    (lambda png, jpeg: jpeg[:2] + b"\xff\xe0\x00\x01" + jpeg[2:], "bad length"),
])
def test_malformed_structure_is_named(helpers, mutate, message):
    png = helpers.png_bytes(helpers.make_image(16, 16))
    jpeg = helpers.png_bytes(helpers.make_image(16, 16), "JPEG")
    err, _ = _refused(mutate(png, jpeg))
    assert err.code == "bad_image" and err.field == "image" and message in err.message, err.message


def test_random_damage_never_escapes_as_another_exception(helpers):
    rng = np.random.default_rng(0)
    files = list(valid_files(helpers).values())
    for i in range(3000):
        data = bytearray(files[i % len(files)])
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.integers(3)
            at = int(rng.integers(len(data)))
            if kind == 0:
                data[at] = int(rng.integers(256))
            elif kind == 1:
                del data[at:at + int(rng.integers(1, 50))]
            else:
                data[at:at] = rng.bytes(int(rng.integers(1, 50)))
        try:
            fmt, w, h = sniff_image(bytes(data), LIMITS)
            check_scans(bytes(data), LIMITS)
        except proto.ProtocolError as e:
            assert e.code in ("bad_image", "limit_exceeded")
        else:
            assert fmt in ("png", "jpeg") and w > 0 and h > 0
