"""Photo-like variants: make a clean rendered picture look photographed or scanned, without changing its answer.

Six operations, applied in this order (the page, then the camera, then the sensor and the file):

  paper        a paper texture: low-frequency blotches and fine grain, multiplied into the picture
  lighting     uneven light: a soft spot of brighter light and a falloff towards one side
  perspective  the page seen at an angle: each image corner moves inwards by up to `strength` x 12% of the
               image; what leaves the page shows a flat backdrop. Boxes follow the warp.
  blur         Gaussian blur (defocus)
  noise        Gaussian sensor noise
  jpeg         JPEG compression at a quality between 90 and 50

`sample_variant(rng, difficulty, width, height)` draws which operations apply (a probability per difficulty) and
how strongly (a strength range per difficulty), as a JSON-able description; `apply_variant(image, boxes,
variant)` is a pure function of it (noise and texture carry their own seeds), so the same seed gives the same
pixels and the scene JSON records exactly what was done. Strengths stay mild enough that every digit, label and
gridline stays readable: the answer never changes. Boxes stay inside the image: the warp only moves corners
inwards, so the whole picture lands inside the frame and the bounding box of a warped box's corners contains the
warped box (a homography maps the box to a convex quadrilateral).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

OPS = ("paper", "lighting", "perspective", "blur", "noise", "jpeg")
# difficulty -> op -> (probability, (strength low, strength high)); strength is in [0, 1]
LEVELS = {
    1: {"paper": (0.2, (0.2, 0.5)), "lighting": (0.3, (0.2, 0.5)), "perspective": (0.3, (0.1, 0.4)),
        "blur": (0.15, (0.1, 0.4)), "noise": (0.2, (0.1, 0.4)), "jpeg": (0.3, (0.1, 0.4))},
    2: {"paper": (0.35, (0.3, 0.7)), "lighting": (0.5, (0.3, 0.7)), "perspective": (0.5, (0.2, 0.7)),
        "blur": (0.3, (0.2, 0.6)), "noise": (0.35, (0.2, 0.6)), "jpeg": (0.45, (0.2, 0.7))},
    3: {"paper": (0.5, (0.4, 1.0)), "lighting": (0.7, (0.4, 1.0)), "perspective": (0.7, (0.4, 1.0)),
        "blur": (0.4, (0.3, 1.0)), "noise": (0.5, (0.3, 1.0)), "jpeg": (0.6, (0.3, 1.0))},
}
MAX_INSET = 0.12  # perspective: the largest corner move, as a fraction of the image side
MAX_BLUR = 0.8  # pixels of Gaussian sigma at strength 1 for a 224-pixel image (scaled with the image)
MAX_NOISE = 8.0  # grey levels of noise sigma at strength 1
JPEG_QUALITY = (90, 50)  # quality at strength 0 and 1


def sample_variant(rng: np.random.Generator, difficulty: int, width: int, height: int) -> dict:
    """Which operations apply and their parameters, drawn from `rng` (JSON-able)."""
    if difficulty not in LEVELS:
        raise ValueError(f"difficulty {difficulty!r} must be one of {tuple(LEVELS)}")
    ops = []
    for name in OPS:
        p, (lo, hi) = LEVELS[difficulty][name]
        if rng.random() >= p:
            continue
        s = round(float(rng.uniform(lo, hi)), 4)
        op = {"op": name, "strength": s}
        if name in ("paper", "noise"):
            op["seed"] = int(rng.integers(2**31))
        elif name == "lighting":
            op["center"] = [round(float(v), 4) for v in rng.uniform(0, 1, 2)]
            op["falloff_angle"] = round(float(rng.uniform(0, 2 * np.pi)), 4)
        elif name == "perspective":
            inset = rng.uniform(0, MAX_INSET * s, (4, 2)) * [width, height]
            frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], float)
            inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
            op["corners"] = np.round(frame + inward * inset, 3).tolist()
            op["backdrop"] = [int(v) for v in rng.integers(60, 140, 3)]
        ops.append(op)
    return {"ops": ops}


def apply_variant(image: Image.Image, boxes, variant: dict) -> tuple[Image.Image, list[list[int]]]:
    """The picture after the variant's operations, and the boxes (x1, y1, x2, y2 pixels) where they now lie."""
    image = image.convert("RGB")
    boxes = [list(b) for b in boxes]
    for op in variant["ops"]:
        name = op["op"]
        if name not in OPS:
            raise ValueError(f"photo variant op {name!r} is unknown; known: {OPS}")
        if name == "perspective":
            image, boxes = _perspective(image, boxes, op)
        else:
            image = _PIXEL_OPS[name](image, op)
    return image, boxes


def _as_float(image: Image.Image) -> np.ndarray:
    return np.asarray(image, np.float64)


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Values in [0, 1] varying smoothly over the image (a coarse random grid, bicubically upsampled)."""
    coarse = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((width, height), Image.BICUBIC), np.float64) / 255.0


def _paper(image: Image.Image, op: dict) -> Image.Image:
    w, h = image.size
    rng = np.random.default_rng(op["seed"])
    blotches = _smooth_field(rng, w, h, 6)
    grain = rng.random((h, w))
    shade = 1.0 - op["strength"] * (0.10 * blotches + 0.06 * grain)
    tint = np.array([1.0, 0.985, 0.95])  # paper is slightly warm
    return _to_image(_as_float(image) * shade[..., None] * (1 - op["strength"] * (1 - tint)))


def _lighting(image: Image.Image, op: dict) -> Image.Image:
    w, h = image.size
    ys, xs = np.mgrid[0:h, 0:w]
    u, v = (xs + 0.5) / w, (ys + 0.5) / h
    cx, cy = op["center"]
    spot = np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / 0.18)
    a = op["falloff_angle"]
    ramp = (u - 0.5) * np.cos(a) + (v - 0.5) * np.sin(a)  # in [-0.71, 0.71]
    gain = 1.0 + op["strength"] * (0.12 * spot - 0.35 * (ramp + 0.71) / 1.42)
    return _to_image(_as_float(image) * gain[..., None])


def _blur(image: Image.Image, op: dict) -> Image.Image:
    radius = op["strength"] * MAX_BLUR * min(image.size) / 224
    return image.filter(ImageFilter.GaussianBlur(radius))


def _noise(image: Image.Image, op: dict) -> Image.Image:
    w, h = image.size
    sigma = op["strength"] * MAX_NOISE
    return _to_image(_as_float(image) + np.random.default_rng(op["seed"]).normal(0.0, sigma, (h, w, 1)))


def _jpeg(image: Image.Image, op: dict) -> Image.Image:
    hi, lo = JPEG_QUALITY
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(round(hi - op["strength"] * (hi - lo))))
    buf.seek(0)
    with Image.open(buf) as decoded:
        return decoded.convert("RGB")


_PIXEL_OPS = {"paper": _paper, "lighting": _lighting, "blur": _blur, "noise": _noise, "jpeg": _jpeg}


def homography(src, dst) -> np.ndarray:
    """The 3x3 matrix H (H[2, 2] = 1) with H @ (x, y, 1) ~ (x', y', 1) for four point pairs src -> dst."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows, float), np.array(rhs, float)), 1.0).reshape(3, 3)


def map_points(h: np.ndarray, points) -> np.ndarray:
    p = np.asarray(points, float).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ h.T
    return q[:, :2] / q[:, 2:]


def _perspective(image: Image.Image, boxes: list[list], op: dict):
    w, h = image.size
    frame = [[0, 0], [w, 0], [w, h], [0, h]]
    forward = homography(frame, op["corners"])
    backward = homography(op["corners"], frame)  # PIL asks, per output pixel, where to read the input
    warped = image.transform((w, h), Image.PERSPECTIVE, tuple((backward / backward[2, 2]).ravel()[:8]),
                             resample=Image.BICUBIC, fillcolor=tuple(op["backdrop"]))
    out = []
    for x1, y1, x2, y2 in boxes:
        q = map_points(forward, [[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
        nx1, ny1 = max(0, int(np.floor(q[:, 0].min()))), max(0, int(np.floor(q[:, 1].min())))
        nx2, ny2 = min(w, int(np.ceil(q[:, 0].max()))), min(h, int(np.ceil(q[:, 1].max())))
        out.append([nx1, ny1, max(nx2, nx1 + 1), max(ny2, ny1 + 1)])
    return warped, out
