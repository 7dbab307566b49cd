"""DataPool: image versions and provenance, stale results, pass rates, sampling rules, exact resume, errors."""
import collections
import copy
import hashlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from syngrpo_jax.data.pool import DataPool, PoolError, UnknownSampleError, difficulty_weights, sanitize_id
from syngrpo_jax.data.sample import Sample

W, H = 12, 10  # non-square, so a width/height mix-up shows


def png_bytes(color, size=(W, H), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def color_of(*key) -> tuple:
    d = hashlib.sha256(repr(key).encode()).digest()
    return d[0], d[1], d[2]


def make_samples(root, n, *, with_size=True):
    """n REC samples with real original PNGs under root/originals."""
    os.makedirs(os.path.join(root, "originals"), exist_ok=True)
    samples = []
    for i in range(n):
        path = os.path.join(root, "originals", f"img{i}.png")
        with open(path, "wb") as f:
            f.write(png_bytes(color_of("orig", i)))
        samples.append(Sample(f"s{i:03d}", "rec", path, query=f"object {i}", boxes=[[1, 1, 5, 5]],
                              labels=(f"object {i}",), image_size=(W, H) if with_size else None, meta={"i": i}))
    return samples


def sha(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def pool_setup(tmp_path):
    samples = make_samples(str(tmp_path), 5)
    return samples, DataPool(samples, tmp_path / "work", seed=0), str(tmp_path / "work")


# ---------------------------------------------------------------------------------------------- replacement


def test_replace_swaps_current_keeps_original_and_records_provenance(pool_setup):
    samples, pool, workdir = pool_setup
    s = samples[2]
    before = sha(s.image_path)
    data = png_bytes((1, 2, 3))
    pool.next_batch(3)  # epoch 0, step 1
    assert pool.current(s.sample_id) is s and pool.version(s.sample_id) == 0

    ok = pool.replace(s.sample_id, data, description="a snowy street", submitted_step=4, applied_step=6,
                      job_id="job-7", meta={"backend": "procedural", "seconds": 1.5})
    assert ok is True
    cur = pool.current(s.sample_id)
    assert cur.image_path == os.path.join(workdir, "synth", sanitize_id(s.sample_id), "v1.png")
    assert cur.image_size == s.image_size and cur.sample_id == s.sample_id and cur.query == s.query
    np.testing.assert_array_equal(cur.boxes, s.boxes)
    assert cur.labels == s.labels and cur.meta == s.meta
    with open(cur.image_path, "rb") as f:
        assert f.read() == data
    assert pool.original(s.sample_id) is s and sha(s.image_path) == before
    assert not [f for f in os.listdir(os.path.dirname(cur.image_path)) if f.endswith(".tmp")]

    h = pool.history(s.sample_id)
    assert [v.version for v in h] == [0, 1]
    assert h[0].kind == "original" and h[0].image_path == s.image_path and h[0].path is None
    v = h[1]
    assert v.kind == "synthesized"
    assert v.description == "a snowy street"
    assert v.submitted_step == 4 and v.applied_step == 6
    assert v.job_id == "job-7"
    assert v.path == os.path.join("synth", sanitize_id(s.sample_id), "v1.png")
    assert v.image_path == os.path.join(workdir, v.path) == cur.image_path
    assert v.epoch == 0
    assert v.meta == {"backend": "procedural", "seconds": 1.5}

    # a second result bumps the version; the first file stays (galleries read it), the original stays
    pool.next_batch(3)  # crosses into epoch 1
    assert pool.replace(s.sample_id, png_bytes((9, 9, 9)), description="a beach", submitted_step=5, applied_step=7)
    h = pool.history(s.sample_id)
    assert [v.version for v in h] == [0, 1, 2] and h[2].epoch == 1 and h[2].job_id is None and h[2].meta is None
    for v in h[1:]:
        assert os.path.isfile(os.path.join(workdir, v.path))
    with open(os.path.join(workdir, h[1].path), "rb") as f:
        assert f.read() == data
    assert sha(s.image_path) == before
    # other samples untouched
    assert all(pool.current(o.sample_id) is o for o in samples if o is not s)
    st = pool.stats()
    assert st["num_synthesized"] == 1 and st["replacements"] == 2 and st["stale_dropped"] == 0


def test_stale_and_out_of_order_results_are_dropped(pool_setup):
    samples, pool, workdir = pool_setup
    sid = samples[0].sample_id
    assert pool.replace(sid, png_bytes((10, 0, 0)), description="newer", submitted_step=8, applied_step=9)
    # a job submitted at step 3 arrives after the one submitted at step 8: stale, nothing changes
    assert pool.replace(sid, png_bytes((20, 0, 0)), description="older", submitted_step=3, applied_step=10) is False
    assert pool.version(sid) == 1 and pool.history(sid)[-1].description == "newer"
    assert not os.path.exists(os.path.join(workdir, pool.synth_path(sid, 2)))
    # stale results are dropped without even looking at the bytes
    assert pool.replace(sid, b"garbage", description="older", submitted_step=7, applied_step=10) is False
    # same submission step: accepted (later arrival wins); later step: accepted
    assert pool.replace(sid, png_bytes((30, 0, 0)), description="same step", submitted_step=8, applied_step=10)
    assert pool.replace(sid, png_bytes((40, 0, 0)), description="later", submitted_step=9, applied_step=10)
    assert pool.version(sid) == 3
    st = pool.stats()
    assert st["stale_dropped"] == 2 and st["replacements"] == 3
    # anything against the original is fresh, for other samples too
    assert pool.replace(samples[1].sample_id, png_bytes((1, 1, 1)), description="d", submitted_step=0,
                        applied_step=0)


def test_revert_goes_back_to_the_original_and_makes_older_jobs_stale(pool_setup):
    samples, pool, workdir = pool_setup
    s = samples[3]
    before = sha(s.image_path)
    pool.replace(s.sample_id, png_bytes((5, 5, 5)), description="d", submitted_step=2, applied_step=3)
    pool.revert(s.sample_id, step=6)
    assert pool.current(s.sample_id) is s and pool.version(s.sample_id) == 2
    v = pool.history(s.sample_id)[-1]
    assert (v.kind, v.path, v.image_path, v.submitted_step, v.applied_step) == ("revert", None, s.image_path, 6, 6)
    assert pool.stats()["num_synthesized"] == 0 and pool.stats()["reverts"] == 1
    assert pool.replace(s.sample_id, png_bytes((6, 6, 6)), description="d", submitted_step=5, applied_step=7) is False
    assert pool.replace(s.sample_id, png_bytes((6, 6, 6)), description="d", submitted_step=6, applied_step=7)
    assert pool.history(s.sample_id)[-1].path.endswith("v3.png") and sha(s.image_path) == before
    assert os.path.isfile(os.path.join(workdir, pool.history(s.sample_id)[1].path))


def test_size_is_probed_when_the_sample_does_not_record_it(tmp_path):
    samples = make_samples(str(tmp_path), 2, with_size=False)
    pool = DataPool(samples, tmp_path / "work")
    assert pool.replace("s000", png_bytes((1, 2, 3)), description="d", submitted_step=0, applied_step=0)
    assert pool.current("s000").image_size is None
    with pytest.raises(PoolError, match=r"\(12, 10\)"):
        pool.replace("s001", png_bytes((1, 2, 3), size=(H, W)), description="d", submitted_step=0, applied_step=0)


def test_sanitised_directory_names_are_distinct_and_stay_inside_synth(tmp_path):
    ids = ["a/b", "a_b", "a:b", "A_b", "../../etc", ".", "..", "x" * 300, "x" * 300 + "y", "ünï cødé", "a\\b"]
    path = str(tmp_path / "img.png")
    with open(path, "wb") as f:
        f.write(png_bytes((0, 0, 0)))
    samples = [Sample(i, "rec", path, query="q", boxes=[[1, 1, 2, 2]], labels=("q",), image_size=(W, H))
               for i in ids]
    pool = DataPool(samples, tmp_path / "work")
    names = {sanitize_id(i) for i in ids}
    assert len({n.casefold() for n in names}) == len(ids)
    synth = os.path.realpath(tmp_path / "work" / "synth")
    for k, i in enumerate(ids):
        assert pool.replace(i, png_bytes((k, 0, 0)), description="d", submitted_step=0, applied_step=0)
        p = os.path.realpath(pool.current(i).image_path)
        assert os.path.dirname(os.path.dirname(p)) == synth and os.path.isfile(p)
        name = os.path.basename(os.path.dirname(p))
        assert len(name) <= 65 and not name.startswith(".") and "/" not in name and "\\" not in name
    assert len(os.listdir(synth)) == len(ids)
    assert sha(path) == hashlib.sha256(png_bytes((0, 0, 0))).hexdigest()


# ---------------------------------------------------------------------------------------------- pass rates


def test_pass_rate_ema(pool_setup):
    samples, _, workdir = pool_setup
    pool = DataPool(samples, workdir, pass_rate_momentum=0.75)
    assert pool.pass_rate("s000") is None and pool.stats()["mean_pass_rate"] is None
    pool.update_pass_rates({"s000": 0.5, "s001": np.float32(1.0)}, step=0)
    assert pool.pass_rate("s000") == 0.5 and pool.pass_rate("s001") == 1.0  # first observation initialises
    pool.update_pass_rates({"s000": 1.0}, step=1)
    assert pool.pass_rate("s000") == pytest.approx(0.75 * 0.5 + 0.25 * 1.0)
    pool.update_pass_rates({"s000": 0.0}, step=2)
    assert pool.pass_rate("s000") == pytest.approx(0.75 * 0.625)
    assert pool.pass_rates()["s002"] is None
    st = pool.stats()
    assert st["num_with_pass_rate"] == 2 and st["mean_pass_rate"] == pytest.approx((0.75 * 0.625 + 1.0) / 2)
    # validation happens before any update
    with pytest.raises(PoolError, match=r"accuracies\['s002'\]"):
        pool.update_pass_rates({"s001": 0.0, "s002": 1.5}, step=3)
    assert pool.pass_rate("s001") == 1.0
    with pytest.raises(UnknownSampleError):
        pool.update_pass_rates({"nope": 0.5}, step=3)
    with pytest.raises(PoolError, match="nan"):
        pool.update_pass_rates({"s001": float("nan")}, step=3)


# ---------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("n, batch_size", [(10, 3), (10, 4), (7, 7), (10, 1), (9, 6), (5, 5)])
def test_uniform_epochs_visit_every_sample_once_and_batches_never_repeat(tmp_path, n, batch_size):
    samples = make_samples(str(tmp_path), n)
    pool = DataPool(samples, tmp_path / "work", seed=3)
    stream = []
    for step in range(30):
        assert pool.epoch == len(stream) // n and pool.step == step
        batch = [s.sample_id for s in pool.next_batch(batch_size)]
        assert len(batch) == batch_size and len(set(batch)) == batch_size
        stream += batch
    ids = sorted(s.sample_id for s in samples)
    full = len(stream) // n
    for e in range(full):
        assert sorted(stream[e * n:(e + 1) * n]) == ids, f"epoch {e}"
    assert len(set(stream[full * n:])) == len(stream) - full * n  # the partial epoch has no repeats
    assert pool.epoch == full and pool.step == 30


def test_uniform_carry_over_rule(tmp_path):
    """A batch straddling epochs takes the rest of epoch e, then epoch e+1's order skipping what it holds;
    skipped samples come first in the rest of epoch e+1."""
    samples = make_samples(str(tmp_path), 5)
    ref = DataPool(samples, tmp_path / "work", seed=11)
    orders = [[s.sample_id for s in ref.next_batch(5)] for _ in range(2)]  # B = N: one epoch per batch
    assert orders[0] != orders[1]
    pool = DataPool(samples, tmp_path / "work", seed=11)
    first = [s.sample_id for s in pool.next_batch(3)]
    second = [s.sample_id for s in pool.next_batch(3)]
    rest = [s.sample_id for s in pool.next_batch(4)]
    assert first == orders[0][:3]
    leftover = orders[0][3:]
    fill = [i for i in orders[1] if i not in leftover][:1]
    assert second == leftover + fill
    assert rest == [i for i in orders[1] if i not in fill]


def test_sampling_is_deterministic_per_seed_and_independent_of_input_order(tmp_path):
    samples = make_samples(str(tmp_path), 12)

    def draw(pool, k=8, b=5):
        return [[s.sample_id for s in pool.next_batch(b)] for _ in range(k)]

    for sampling in ("uniform", "difficulty"):
        a = draw(DataPool(samples, tmp_path / "w", seed=1, sampling=sampling))
        b = draw(DataPool(list(reversed(samples)), tmp_path / "w", seed=1, sampling=sampling))
        c = draw(DataPool(samples, tmp_path / "w", seed=2, sampling=sampling))
        assert a == b
        assert a != c


def test_difficulty_mode_favours_pass_rates_near_half(tmp_path):
    n = 60
    samples = make_samples(str(tmp_path), n)
    groups = {0.5: [], 0.2: [], 0.0: [], 1.0: []}
    rates = {}
    for i, s in enumerate(samples):
        p = list(groups)[i % 4]
        groups[p].append(s.sample_id)
        rates[s.sample_id] = p
    eps = 0.05
    counts = {}
    for sampling in ("difficulty", "uniform"):
        pool = DataPool(samples, tmp_path / "w", seed=0, sampling=sampling, difficulty_eps=eps)
        pool.update_pass_rates(rates, step=0)
        c = collections.Counter()
        for _ in range(300):
            batch = [s.sample_id for s in pool.next_batch(8)]
            assert len(set(batch)) == 8
            c.update(batch)
        counts[sampling] = {p: sum(c[i] for i in ids) / (300 * 8) for p, ids in groups.items()}
    d, u = counts["difficulty"], counts["uniform"]
    # weights 0.30 : 0.21 : 0.05 : 0.05 -> expected shares about 0.49 : 0.34 : 0.08 : 0.08 (a bit flatter
    # without replacement); uniform gives 0.25 each
    assert d[0.5] > 0.42 and d[0.2] > 0.28 and d[0.0] < 0.13 and d[1.0] < 0.13
    assert d[0.5] > d[0.2] > max(d[0.0], d[1.0])
    assert all(abs(share - 0.25) < 0.03 for share in u.values())


def test_difficulty_weights_formula_and_unseen_at_max():
    p = np.array([0.0, 0.25, 0.5, 1.0, np.nan])
    np.testing.assert_allclose(difficulty_weights(p, 0.1), [0.1, 0.1 + 0.1875, 0.35, 0.1, 0.35])


def test_difficulty_mode_prefers_unseen_and_never_repeats_at_full_batch(tmp_path):
    samples = make_samples(str(tmp_path), 20)
    pool = DataPool(samples, tmp_path / "w", seed=5, sampling="difficulty", difficulty_eps=0.01)
    pool.update_pass_rates({s.sample_id: 1.0 for s in samples[:10]}, step=0)  # seen and solved
    c = collections.Counter()
    for _ in range(200):
        c.update(s.sample_id for s in pool.next_batch(5))
    seen = sum(c[s.sample_id] for s in samples[:10])
    assert seen < 0.1 * 1000  # weight 0.01 vs 0.26 -> about 4% of draws
    full = [s.sample_id for s in pool.next_batch(20)]
    assert sorted(full) == sorted(s.sample_id for s in samples)


def test_tracked_ids_are_a_deterministic_seeded_prefix(tmp_path):
    samples = make_samples(str(tmp_path), 30)
    pool = DataPool(samples, tmp_path / "w", seed=0)
    t5, t10 = pool.tracked_ids(5), pool.tracked_ids(10)
    assert t10[:5] == t5 and len(set(t10)) == 10
    assert DataPool(list(reversed(samples)), tmp_path / "w", seed=0).tracked_ids(10) == t10
    assert DataPool(samples, tmp_path / "w", seed=1).tracked_ids(10) != t10
    assert sorted(pool.tracked_ids(100)) == sorted(s.sample_id for s in samples)
    pool.next_batch(7)
    assert pool.tracked_ids(10) == t10  # does not move with training


# ---------------------------------------------------------------------------------------------- exact resume

N_RESUME, B_RESUME, STEPS = 7, 3, 14


def trainer_step(pool, step, pending):
    """One simulated trainer step: draw, score, submit jobs (delay 0-3 steps, some never return) and apply the
    results that are due in reverse submission order, so older ones arrive after newer ones (stale)."""
    batch = pool.next_batch(B_RESUME)
    ids = [s.sample_id for s in batch]
    pool.update_pass_rates({sid: color_of("acc", sid, step)[0] % 7 / 6 for sid in ids}, step)
    for sid in ids:
        delay = color_of("delay", sid, step)[0] % 5
        if delay < 4:
            pending.append((step + delay, step, sid, f"job-{step}-{sid}"))
    due = [p for p in pending if p[0] <= step]
    pending[:] = [p for p in pending if p[0] > step]
    applied = []
    for _, submitted, sid, job in reversed(due):
        ok = pool.replace(sid, png_bytes(color_of("synth", sid, submitted)), description=f"bg {submitted}",
                          submitted_step=submitted, applied_step=step, job_id=job, meta={"arrived": step})
        applied.append((job, ok))
    if step == 9:
        pool.revert(ids[0], step=step)
    return {"batch": ids, "paths": [s.image_path for s in batch], "applied": applied,
            "versions": {sid: pool.version(sid) for sid in sorted(pool.sample_ids)},
            "pass": pool.pass_rates(), "stats": pool.stats()}


@pytest.mark.parametrize("sampling", ["uniform", "difficulty"])
def test_exact_resume(tmp_path, sampling):
    samples = make_samples(str(tmp_path), N_RESUME)
    workdir = tmp_path / "work"
    kwargs = dict(seed=4, sampling=sampling, difficulty_eps=0.02, pass_rate_momentum=0.6)
    saves = {}
    ref = DataPool(samples, workdir, **kwargs)
    pending = []
    log = []
    for step in range(STEPS):
        saves[step] = (json.dumps(ref.state_dict()), copy.deepcopy(pending))
        log.append(trainer_step(ref, step, pending))
    final = ref.state_dict()
    st = ref.stats()
    assert st["stale_dropped"] > 0 and st["replacements"] > 5 and st["reverts"] == 1  # the scenario bites
    hashes = {sid: [sha(v.image_path) for v in ref.history(sid)] for sid in ref.sample_ids}

    # k = 0, mid-epoch (2 -> 6 of 7 drawn), straddled (3 -> 9), exact epoch boundary (7 -> 21), late (12)
    for k in (0, 2, 3, 7, 12):
        state, pend = saves[k]
        pool = DataPool(list(reversed(samples)), workdir, **kwargs)
        pool.load_state_dict(json.loads(state))
        assert pool.step == k and json.dumps(pool.state_dict()) == state
        pend = copy.deepcopy(pend)
        for step in range(k, STEPS):
            assert trainer_step(pool, step, pend) == log[step], f"resumed at {k}, diverged at step {step}"
        assert pool.state_dict() == final
        for sid in pool.sample_ids:
            assert pool.history(sid) == ref.history(sid)
            assert [sha(v.image_path) for v in pool.history(sid)] == hashes[sid]
            assert pool.current(sid).image_path == ref.current(sid).image_path
    for s in samples:
        assert sha(s.image_path) == hashlib.sha256(png_bytes(color_of("orig", int(s.sample_id[1:])))).hexdigest()


def test_state_dict_is_plain_json(pool_setup):
    samples, pool, _ = pool_setup
    pool.next_batch(2)
    pool.update_pass_rates({"s000": 0.25}, step=0)
    pool.replace("s000", png_bytes((3, 3, 3)), description="d", submitted_step=0, applied_step=1, meta={"k": [1]})
    state = pool.state_dict()
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert state["sample_ids"] == sorted(s.sample_id for s in samples)
    assert state["sampler"]["epoch"] == 0 and len(state["sampler"]["remaining"]) == 3
    assert state["versions"]["s000"][0]["path"] == pool.history("s000")[1].path
    assert state["pass_rates"] == {"s000": {"value": 0.25, "count": 1, "step": 0}}


# ---------------------------------------------------------------------------------------------- errors


def test_duplicate_ids(tmp_path):
    samples = make_samples(str(tmp_path), 3)
    with pytest.raises(PoolError, match="'s001'.*duplicate") as info:
        DataPool(samples + [samples[1]], tmp_path / "w")
    assert info.value.field == "sample_id" and info.value.value == "s001"
    with pytest.raises(PoolError, match="at least one"):
        DataPool([], tmp_path / "w")


def test_unknown_ids(pool_setup):
    _, pool, _ = pool_setup
    for call in (lambda: pool.current("nope"), lambda: pool.original("nope"), lambda: pool.history("nope"),
                 lambda: pool.version("nope"), lambda: pool.pass_rate("nope"), lambda: pool.revert("nope", step=0),
                 lambda: pool.replace("nope", png_bytes((0, 0, 0)), description="d", submitted_step=0,
                                      applied_step=0),
                 lambda: pool.replace(7, png_bytes((0, 0, 0)), description="d", submitted_step=0, applied_step=0)):
        with pytest.raises(UnknownSampleError, match=r"sample_id = ('nope'|7): no such sample"):
            call()


def test_bad_images_are_rejected_and_change_nothing(pool_setup, tmp_path):
    samples, pool, workdir = pool_setup
    sid = samples[0].sample_id
    jpeg = io.BytesIO()
    Image.new("RGB", (W, H)).save(jpeg, format="JPEG")
    good = png_bytes((1, 1, 1))
    noise = io.BytesIO()  # incompressible pixels, so cutting the file cuts the pixel data
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(noise, format="PNG")
    noise = noise.getvalue()
    broken = bytearray(noise)
    broken[len(noise) // 2] ^= 0xFF
    cases = [
        (noise[:-30], "does not decode.*truncated"),
        (bytes(broken), "does not decode"),
        (png_bytes((1, 1, 1), size=(H, W)), r"size \(10, 12\).*\(12, 10\)"),
        (b"not an image at all", "not a PNG"),
        (jpeg.getvalue(), "not a PNG"),
        (good[:40], "does not decode"),
        (good[:8] + b"\0" * 40, "does not decode"),
    ]
    for data, pattern in cases:
        with pytest.raises(PoolError, match=pattern) as info:
            pool.replace(sid, data, description="d", submitted_step=0, applied_step=0)
        assert info.value.field == "png_bytes" and sid in str(info.value)
    with pytest.raises(PoolError, match="png_bytes"):
        pool.replace(sid, "a string", description="d", submitted_step=0, applied_step=0)
    assert pool.version(sid) == 0 and pool.stats()["replacements"] == 0
    assert not os.path.exists(os.path.join(workdir, "synth"))
    # grayscale / RGBA PNGs of the right size are fine (the trainer converts to RGB when it loads)
    assert pool.replace(sid, png_bytes(7, mode="L"), description="d", submitted_step=0, applied_step=0)


@pytest.mark.parametrize("kwargs, field", [
    (dict(description=3), "description"),
    (dict(submitted_step=-1), "submitted_step"),
    (dict(applied_step=True), "applied_step"),
    (dict(submitted_step=5, applied_step=4), "applied_step"),
    (dict(job_id=5), "job_id"),
    (dict(meta={"x": float("nan")}), "meta"),
    (dict(meta={"x": object()}), "meta"),
])
def test_bad_replace_arguments(pool_setup, kwargs, field):
    _, pool, _ = pool_setup
    args = dict(description="d", submitted_step=0, applied_step=0) | kwargs
    with pytest.raises(PoolError) as info:
        pool.replace("s000", png_bytes((0, 0, 0)), **args)
    assert info.value.field == field and field in str(info.value)


@pytest.mark.parametrize("batch_size", [0, -1, 6, 2.0, True, None])
def test_bad_batch_size(pool_setup, batch_size):
    _, pool, _ = pool_setup
    with pytest.raises(PoolError, match=rf"batch_size = {batch_size!r}: .*\[1, 5\]"):
        pool.next_batch(batch_size)
    assert pool.step == 0


@pytest.mark.parametrize("kwargs, field", [
    (dict(sampling="hard"), "sampling"),
    (dict(difficulty_eps=0.0), "difficulty_eps"),
    (dict(difficulty_eps=float("inf")), "difficulty_eps"),
    (dict(pass_rate_momentum=1.0), "pass_rate_momentum"),
    (dict(seed=-1), "seed"),
])
def test_bad_config(tmp_path, kwargs, field):
    with pytest.raises(PoolError, match=field):
        DataPool(make_samples(str(tmp_path), 2), tmp_path / "w", **kwargs)


def test_state_from_another_sample_set_or_config_is_rejected(tmp_path):
    samples = make_samples(str(tmp_path), 6)
    pool = DataPool(samples, tmp_path / "w", seed=1)
    pool.next_batch(4)
    pool.replace("s002", png_bytes((2, 2, 2)), description="d", submitted_step=0, applied_step=0)
    state = json.loads(json.dumps(pool.state_dict()))

    other = DataPool(samples[:5], tmp_path / "w", seed=1)
    with pytest.raises(PoolError, match=r"state.sample_ids.*another sample set.*'s005'") as info:
        other.load_state_dict(state)
    assert info.value.field == "state.sample_ids"
    assert other.step == 0  # nothing changed
    with pytest.raises(PoolError, match="state.config.seed"):
        DataPool(samples, tmp_path / "w", seed=2).load_state_dict(state)
    with pytest.raises(PoolError, match="state.config.sampling"):
        DataPool(samples, tmp_path / "w", seed=1, sampling="difficulty").load_state_dict(state)
    with pytest.raises(PoolError, match="state.format"):
        DataPool(samples, tmp_path / "w", seed=1).load_state_dict({"step": 3})
    # a different workdir lacks the current images
    with pytest.raises(PoolError, match="missing files"):
        DataPool(samples, tmp_path / "elsewhere", seed=1).load_state_dict(state)
    bad = copy.deepcopy(state)
    bad["versions"]["s002"][0]["path"] = "../../etc/passwd"
    with pytest.raises(PoolError, match=r"state.versions\['s002'\]\[0\].path"):
        DataPool(samples, tmp_path / "w", seed=1).load_state_dict(bad)
    bad = copy.deepcopy(state)
    bad["sampler"]["remaining"].append("zzz")
    with pytest.raises(PoolError, match="state.sampler.remaining"):
        DataPool(samples, tmp_path / "w", seed=1).load_state_dict(bad)


# ---------------------------------------------------------------------------------------------- retention


def test_retention_keeps_the_last_k_tracked_samples_and_what_kept_checkpoints_reference(tmp_path):
    samples = make_samples(str(tmp_path), 4)
    workdir = str(tmp_path / "w")
    pool = DataPool(samples, workdir, seed=0, keep_versions=1)
    states = {}
    for step in range(8):  # s000 and s001 get a new image at steps 0, 2, 4, 6 (versions 1..4)
        if step % 2 == 0:
            for sid in ("s000", "s001"):
                assert pool.replace(sid, png_bytes(color_of(sid, step)), description=f"d{step}",
                                    submitted_step=step, applied_step=step)
        states[step + 1] = json.loads(json.dumps(pool.state_dict()))  # a checkpoint saved after this step
    files = lambda sid: {v.version for v in pool.history(sid)[1:] if os.path.isfile(v.image_path)}  # noqa: E731
    assert files("s000") == {1, 2, 3, 4}
    # Checkpoints kept at steps 3 and 7: step 3 holds version 2 (applied at step 2), step 7 the head (version 4).
    deleted = pool.prune_versions(keep_ids=["s001"], checkpoint_steps=[3, 7])
    assert deleted == 2 and files("s000") == {2, 4} and files("s001") == {1, 2, 3, 4}
    assert len(pool.history("s000")) == 5  # provenance stays
    assert pool.prune_versions(keep_ids=["s001"], checkpoint_steps=[3, 7]) == 0  # idempotent
    resumed = DataPool(samples, workdir, seed=0, keep_versions=1)
    resumed.load_state_dict(states[3])  # the kept checkpoint still resumes
    assert resumed.version("s000") == 2 and os.path.isfile(resumed.current("s000").image_path)
    with pytest.raises(PoolError, match="missing files"):
        resumed.load_state_dict(states[2])  # that checkpoint was not kept: its head (version 1) is gone
    keep_all = DataPool(samples, str(tmp_path / "w2"), seed=0)
    keep_all.replace("s000", png_bytes((1, 2, 3)), description="d", submitted_step=0, applied_step=0)
    keep_all.replace("s000", png_bytes((3, 2, 1)), description="d", submitted_step=1, applied_step=1)
    assert keep_all.prune_versions(checkpoint_steps=[]) == 0  # keep_versions=0 (default) keeps every file
    with pytest.raises(PoolError, match="keep_versions"):
        DataPool(samples, workdir, keep_versions=-1)


@pytest.mark.parametrize("edit, field", [
    (lambda s: s["pass_rates"]["s000"].update(value=2.0), r"state.pass_rates\['s000'\].value"),
    (lambda s: s["pass_rates"]["s000"].update(count=0), r"state.pass_rates\['s000'\].count"),
    (lambda s: s["versions"]["s002"][0].update(kind="painted"), r"state.versions\['s002'\]\[0\].kind"),
    (lambda s: s["versions"]["s002"][0].update(version=3), r"state.versions\['s002'\]\[0\].version"),
    (lambda s: s["versions"]["s002"][0].update(meta=[1]), r"state.versions\['s002'\]\[0\].meta"),
    (lambda s: s.update(step=-1), r"state.step"),
    (lambda s: s.pop("counters"), r"state.counters"),
    (lambda s: s["sampler"].update(epoch="0"), r"state.sampler.epoch"),
])
def test_state_schema_names_the_bad_field(tmp_path, edit, field):
    samples = make_samples(str(tmp_path), 4)
    pool = DataPool(samples, tmp_path / "w", seed=1)
    pool.next_batch(2)
    pool.update_pass_rates({"s000": 0.5}, step=0)
    pool.replace("s002", png_bytes((2, 2, 2)), description="d", submitted_step=0, applied_step=0)
    state = json.loads(json.dumps(pool.state_dict()))
    edit(state)
    fresh = DataPool(samples, tmp_path / "w", seed=1)
    with pytest.raises(PoolError, match=field) as info:
        fresh.load_state_dict(state)
    assert info.value.field.startswith("state.") and fresh.step == 0  # nothing changed
