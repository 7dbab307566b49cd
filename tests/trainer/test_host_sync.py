"""host_sync: what process 0's pool records, how it travels, and a replay that leaves another process's pool in
the same state (single process here: two pools stand for two processes, each with its own directory)."""
import hashlib
import io
import os

import pytest
from PIL import Image

from syngrpo_jax.data.pool import DataPool, PoolError
from syngrpo_jax.data.sample import Sample
from syngrpo_jax.trainer import host_sync

W, H = 12, 10


def png(color, size=(W, H)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def samples(tmp_path):
    os.makedirs(tmp_path / "originals")
    out = []
    for i in range(4):
        path = tmp_path / "originals" / f"img{i}.png"
        path.write_bytes(png((i, 0, 0)))
        out.append(Sample(f"s{i}", "rec", str(path), query="q", boxes=[[1, 1, 5, 5]], labels=("q",),
                          image_size=(W, H)))
    return out


@pytest.fixture
def pools(samples, tmp_path):
    primary = host_sync.RecordingPool(samples, tmp_path / "p0", seed=3)
    other = DataPool(list(reversed(samples)), tmp_path / "p1", seed=3)  # any order: the pool sorts its ids
    return primary, other


def test_replay_gives_the_same_state_files_and_hash(pools):
    primary, other = pools
    for pool in pools:  # what every process does by itself: draw batches, fold pass rates
        pool.next_batch(2)
        pool.update_pass_rates({"s1": 0.5}, step=0)
    assert primary.replace("s1", png((9, 9, 9)), description="snow", submitted_step=2, applied_step=3,
                           job_id="j1", meta={"latency_s": 0.123456789, "boxes_verified": True})
    assert not primary.replace("s1", png((8, 8, 8)), description="late", submitted_step=1, applied_step=3,
                               job_id="j0")  # stale: submitted before the current image's job
    primary.revert("s2", step=3)
    assert primary.replace("s2", png((7, 7, 7)), description="sand", submitted_step=3, applied_step=3, job_id="j2")
    with pytest.raises(PoolError):
        primary.replace("s3", png((1, 1, 1), size=(5, 5)), description="x", submitted_step=3, applied_step=3)

    changes = primary.take_changes()
    assert [(c["op"], c["sample_id"]) for c in changes] == [("replace", "s1"), ("replace", "s1"), ("revert", "s2"),
                                                            ("replace", "s2")]  # the refused one is not recorded
    assert changes[1]["png"] == b""  # a stale result travels without its image
    assert primary.take_changes() == []
    data = host_sync.encode(changes)
    assert host_sync.decode(data) == changes
    host_sync.replay(other, host_sync.decode(data))

    assert other.state_dict() == primary.state_dict()
    assert host_sync.state_hash({"pool": other.state_dict()}) == host_sync.state_hash({"pool": primary.state_dict()})
    for sid in ("s1", "s2"):
        a, b = primary.current(sid).image_path, other.current(sid).image_path
        assert a != b and open(a, "rb").read() == open(b, "rb").read()
    assert other.stats()["stale_dropped"] == 1 and other.version("s2") == 2


def test_hash_sees_any_difference(pools):
    primary, other = pools
    assert host_sync.state_hash(primary.state_dict()) == host_sync.state_hash(other.state_dict())
    other.next_batch(1)
    assert host_sync.state_hash(primary.state_dict()) != host_sync.state_hash(other.state_dict())
    digest = hashlib.sha256(b"x").hexdigest()
    assert len(host_sync.state_hash({"a": digest})) == 16


def test_encoding_edge_cases(pools):
    assert host_sync.decode(host_sync.encode([])) == []
    with pytest.raises(ValueError, match="unknown pool change 'resize'"):
        host_sync.replay(pools[1], [{"op": "resize", "sample_id": "s0"}])


def test_replay_on_a_shared_directory_leaves_process_zeros_files_alone(pools, samples, tmp_path):
    """Processes of one run share the run directory: the replay finds process 0's file already holding the image
    and does not write it again (a rename over a file another host is reading can fail that read on NFS); a file
    with other bytes at that path (left by a run resumed from an earlier checkpoint) is overwritten."""
    primary, _ = pools
    shared = DataPool(samples, tmp_path / "p0", seed=3)  # process 1's pool, on process 0's directory
    assert primary.replace("s1", png((9, 9, 9)), description="snow", submitted_step=2, applied_step=3)
    assert primary.replace("s2", png((7, 7, 7)), description="sand", submitted_step=2, applied_step=3)
    path1, path2 = primary.current("s1").image_path, primary.current("s2").image_path
    before = os.stat(path1)
    with open(path2, "wb") as f:  # a leftover of another history at that version's path
        f.write(png((1, 2, 3)))
    host_sync.replay(shared, primary.take_changes())
    assert shared.current("s1").image_path == path1 and shared.state_dict() == primary.state_dict()
    after = os.stat(path1)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert open(path2, "rb").read() == png((7, 7, 7))
