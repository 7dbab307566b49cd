"""Background descriptions: the vocabulary the procedural backend obeys, and the varied, image-specific
descriptions the warm start teaches (`for_sample`), written in that vocabulary so they shape the next image.

The vocabulary (which words of a description set which property of the new background):

A description is read as lower-case words. Words in the tables below set a property; every other word is ignored,
except that a description naming no colour takes its colours from the hashes of its words (the fallback, so any
text still gives its own background). A property no word sets is drawn from the seed.

  colours     COLOR_WORDS: a colour name or a scene word with a typical colour ("forest", "sand", "night"...).
              The first is the main colour, the second (if any) the secondary one of a two-colour texture; with
              one colour the secondary is a lighter (or, for light colours, darker) shade of it.
  brightness  "dark" / "dim" / "shadowy": every colour scaled to DARK_SCALE of itself;
              "bright" / "light" / "pale" / "sunny": every colour mixed BRIGHT_MIX of the way to white.
  texture     "plain" / "solid" / "uniform" / "flat": one colour, nothing else;
              "gradient": a linear blend from the main to the secondary colour along one image axis;
              "striped" / "stripes": bands of the two colours, constant along one axis;
              "checkered" / "checkerboard" / "checker" / "tiled": squares of the two colours;
              "wavy" / "waves" / "rippled": smooth sinusoidal bands whose phase wanders along the other axis;
              "noisy" / "grainy" / "speckled": every pixel an independent random blend of the two colours;
              "mottled" / "cloudy" / "blotchy": smooth low-frequency blotches of the two colours.
              Unset: one of the non-plain textures, drawn from the seed.
  clutter     soft out-of-focus blobs and thin strokes over the texture (never crisp filled shapes);
              "clean" / "empty" / "bare" / "uncluttered": none; "sparse" / "few" / "scattered": CLUTTER_COUNTS
              ["sparse"]; "cluttered" / "clutter" / "busy" / "messy": ["normal"]; "dense" / "crowded" / "many" /
              "heavy": ["dense"]. Unset: none for a plain texture, otherwise sparse or normal from the seed.
  hard        "hard" / "difficult" / "tricky" / "confusing" / "distracting" / "decoys": look-alike decoys, crisp
              filled shapes in the engine's object colours drawn near the kept objects (syngrpo_jax.data.decoys), each
              differing from every kept object in colour, shape and size class, so that no referring expression
              of a kept object can mean a decoy.

When two words set the same property, the later one wins. Same description -> same spec (a pure function).
"""
from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np

COLOR_WORDS = {
    "red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 200), "yellow": (230, 210, 50),
    "orange": (240, 140, 30), "purple": (130, 60, 170), "pink": (240, 150, 190), "brown": (120, 80, 40),
    "black": (20, 20, 20), "white": (240, 240, 240), "gray": (128, 128, 128), "grey": (128, 128, 128),
    "sky": (135, 200, 235), "ocean": (20, 90, 160), "sea": (30, 110, 170), "beach": (230, 210, 160),
    "sand": (220, 195, 140), "desert": (210, 170, 110), "forest": (30, 100, 40), "grass": (90, 170, 60),
    "snow": (245, 248, 255), "snowy": (235, 240, 250), "night": (15, 20, 50), "sunset": (250, 120, 70),
    "city": (110, 110, 120), "street": (90, 90, 95), "kitchen": (200, 180, 150), "room": (190, 170, 150),
    "water": (60, 130, 190), "mountain": (110, 100, 95), "field": (150, 180, 70), "wood": (140, 95, 55),
}
BRIGHTNESS_WORDS = {"dark": "dark", "dim": "dark", "shadowy": "dark",
                    "bright": "bright", "light": "bright", "pale": "bright", "sunny": "bright"}
DARK_SCALE = 0.45
BRIGHT_MIX = 0.55
TEXTURES = ("plain", "gradient", "striped", "checkered", "wavy", "noisy", "mottled")
TEXTURE_WORDS = {
    "plain": "plain", "solid": "plain", "uniform": "plain", "flat": "plain", "gradient": "gradient",
    "striped": "striped", "stripes": "striped", "checkered": "checkered", "checkerboard": "checkered",
    "checker": "checkered", "tiled": "checkered", "wavy": "wavy", "waves": "wavy", "rippled": "wavy",
    "noisy": "noisy", "grainy": "noisy", "speckled": "noisy", "mottled": "mottled", "cloudy": "mottled",
    "blotchy": "mottled",
}
CLUTTER_LEVELS = ("none", "sparse", "normal", "dense")
CLUTTER_WORDS = {
    "clean": "none", "empty": "none", "bare": "none", "uncluttered": "none",
    "sparse": "sparse", "few": "sparse", "scattered": "sparse",
    "cluttered": "normal", "clutter": "normal", "busy": "normal", "messy": "normal",
    "dense": "dense", "crowded": "dense", "many": "dense", "heavy": "dense",
}
CLUTTER_COUNTS = {"none": (0, 0), "sparse": (3, 2), "normal": (7, 5), "dense": (14, 10)}  # (blobs, strokes)
HARD_WORDS = frozenset({"hard", "difficult", "tricky", "confusing", "distracting", "decoys"})
MAX_COLOURS = 4


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a description asks of the background; None: not asked (the seed decides)."""

    colors: tuple[tuple[int, int, int], ...]  # named colours in order of mention (at most MAX_COLOURS)
    hashed_colors: tuple[tuple[int, int, int], ...]  # the fallback when `colors` is empty
    brightness: str | None  # "dark" | "bright"
    texture: str | None  # one of TEXTURES
    clutter: str | None  # one of CLUTTER_LEVELS
    hard: bool


def words(description: str) -> list[str]:
    return re.findall(r"[a-z]+", description.lower())


def _hash_colour(*parts: str) -> tuple[int, int, int]:
    d = hashlib.sha256("\0".join(parts).encode()).digest()
    return d[0], d[1], d[2]


def parse(description: str) -> Spec:
    """The spec of a description (see the module docstring for the vocabulary)."""
    ws = words(description)
    colors = tuple(COLOR_WORDS[w] for w in ws if w in COLOR_WORDS)[:MAX_COLOURS]
    hashed = tuple(_hash_colour("word", w) for w in ws if len(w) > 2)[:MAX_COLOURS]
    if len(hashed) < 2:
        hashed += (_hash_colour("fallback", description, "0"), _hash_colour("fallback", description, "1"))

    def last(table):
        hits = [table[w] for w in ws if w in table]
        return hits[-1] if hits else None

    return Spec(colors=colors, hashed_colors=hashed, brightness=last(BRIGHTNESS_WORDS), texture=last(TEXTURE_WORDS),
                clutter=last(CLUTTER_WORDS), hard=any(w in HARD_WORDS for w in ws))


def vocabulary() -> dict[str, tuple[str, ...]]:
    """Every word the backend obeys, by property (what the policy's descriptions can use)."""
    return {"colour": tuple(COLOR_WORDS), "brightness": tuple(BRIGHTNESS_WORDS), "texture": tuple(TEXTURE_WORDS),
            "clutter": tuple(CLUTTER_WORDS), "hard": tuple(sorted(HARD_WORDS))}


# ---- descriptions for the warm-start targets ----------------------------------------------------------------

# What a target description may use: words the backend obeys (and `words` reads back), one per property, and two
# neutral fillers the parser ignores ("soft": brightness unchanged; "easy": no decoys), so that every slot always
# holds exactly one word.
TARGET_TEXTURES = ("plain", "gradient", "striped", "checkered", "wavy", "noisy", "mottled")
TARGET_CLUTTER = ("clean", "sparse", "cluttered", "dense")
TARGET_COLOURS = tuple(w for w in COLOR_WORDS if w != "grey")  # "gray" already names that colour
TARGET_BRIGHTNESS = ("soft", "dark", "bright")
TARGET_HARDNESS = ("easy", "hard")
HARD_SHARE = 0.3  # of target descriptions that ask for decoys
VISIBLE_DISTANCE = 110.0  # RGB distance a background colour keeps from every object colour
# Engine background kinds (shape_scene.BACKGROUNDS) as the vocabulary's texture words.
_ENGINE_KINDS = {"solid": "plain", "gradient": "gradient", "stripes": "striped", "noise": "noisy"}
TARGET_TEMPLATE = "a {brightness} {texture} {colour1} and {colour2} background, {clutter}, {hardness}"


def target_words() -> tuple[str, ...]:
    """Every word a target description can hold (template glue included): the tiny tokenizer's corpus gets them
    all (`policy.task_corpus`), so that each is one token and every target description has the same length."""
    slots = TARGET_BRIGHTNESS + TARGET_TEXTURES + TARGET_COLOURS + TARGET_CLUTTER + TARGET_HARDNESS
    return ("a", "and", "background") + slots


def for_sample(sample_id: str, object_colors=(), background: str | None = None) -> str:
    """A new-background description for one image, in the backend's vocabulary, one word in each slot of
    TARGET_TEMPLATE: brightness, texture, two colours, clutter, hardness. Deterministic in its arguments, varied
    across images, and specific to this one: the colours stay VISIBLE_DISTANCE away from every object colour in it
    (its objects remain visible) and the texture differs from its current background kind.

    Why a fixed template: the answer follows the description in a Syn-GRPO response, and with a small text rope
    base a tiny model grounds only when the answer sits at the same token offset in every target (README, "What
    limits the warm start"); one word per slot, each one token, gives every description the same length.

    object_colors: RGB triples of the image's objects (unknown: []); background: the engine background kind.
    """
    return draw(_rng_for(sample_id), object_colors, background)


def draw(rng: np.random.Generator, object_colors=(), background: str | None = None) -> str:
    """`for_sample`'s description drawn from `rng` (the data engine's repainted scenes draw theirs this way).
    background: an engine background kind or a vocabulary texture; the description's texture differs from it."""
    current = _ENGINE_KINDS.get(background or "", background)
    textures = [t for t in TARGET_TEXTURES if t != current]
    texture = textures[int(rng.integers(len(textures)))]
    objects = [tuple(float(v) for v in c) for c in object_colors]
    visible = [w for w in TARGET_COLOURS
               if all(sum((a - b) ** 2 for a, b in zip(COLOR_WORDS[w], c)) ** 0.5 >= VISIBLE_DISTANCE
                      for c in objects)]
    if len(visible) < 2:
        visible = list(TARGET_COLOURS)
    first, second = sorted(int(i) for i in rng.choice(len(visible), size=2, replace=False))
    return TARGET_TEMPLATE.format(
        brightness=TARGET_BRIGHTNESS[int(rng.integers(len(TARGET_BRIGHTNESS)))], texture=texture,
        colour1=visible[first], colour2=visible[second],
        clutter=TARGET_CLUTTER[int(rng.integers(len(TARGET_CLUTTER)))],
        hardness=TARGET_HARDNESS[int(rng.random() < HARD_SHARE)])


def _rng_for(sample_id: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"target\0{sample_id}".encode()).digest()[:8], "little"))
