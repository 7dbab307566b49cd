"""Byte budgets, the reply bound they rest on, the config checks, and the admin-token throttle."""
import numpy as np
import pytest

from syngrpo_jax.protocol import synthesis as proto
from synth_torch.admission import AdminGate, Ledger, check_memory_config, largest_reply, reply_reserve
from synth_torch.pipeline import encode_png


@pytest.mark.parametrize("height, width", [(1, 1), (7, 300), (300, 7), (64, 64), (1, 5000), (5000, 1)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_reply_reserve_bounds_the_worst_png(height, width, level):
    """Incompressible pixels are the worst case for zlib: the PNG must still fit the reserve (minus the slack
    for the reply header, which this leaves out)."""
    noise = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert len(encode_png(noise, level)) <= reply_reserve(width, height) - 3000
    assert reply_reserve(width, height) <= largest_reply(height * width)


def ledger(**kw):
    args = dict(max_queued_bytes=1000, max_reply_bytes=10_000, max_client_reply_bytes=6000, reply_hwm=1)
    return Ledger(**{**args, **kw})


def test_admit_names_the_budget_it_would_break():
    led = ledger()
    led.admit(b"a", 400, 3000)
    led.admit(b"a", 400, 3000)  # 6000: exactly the client budget
    with pytest.raises(proto.ProtocolError) as info:
        led.admit(b"a", 100, 1)
    assert info.value.code == "overloaded" and info.value.limit == "max_client_reply_bytes"
    with pytest.raises(proto.ProtocolError) as info:
        led.admit(b"b", 300, 10)  # 1100 queued bytes in total
    assert info.value.limit == "max_queued_bytes"
    led.admit(b"b", 100, 4000)
    with pytest.raises(proto.ProtocolError) as info:
        led.admit(b"c", 10, 1)  # 10,001 reply bytes in total
    assert info.value.limit == "max_reply_bytes"
    assert led.snapshot() == {"queued_bytes": 900, "reply_bytes": 10_000, "clients": 3}


def test_reply_bytes_follow_a_job_to_the_socket():
    led = ledger()
    led.admit(b"a", 100, 3000)
    led.release(b"a", 100, 3000)  # the worker finished: the reply (2500 bytes) replaces the reservation
    assert led.hold(b"a", 2500, reserved=True)
    assert led.snapshot()["reply_bytes"] == 2500 and led.snapshot()["queued_bytes"] == 0
    led.unhold(b"a", 2500)
    led.handed(b"a", 2500)  # ZeroMQ took it: counted until reply_hwm + 1 = 2 later messages got through
    led.handed(b"a", 10)
    assert led.snapshot()["reply_bytes"] == 2510
    led.handed(b"a", 20)
    assert led.snapshot()["reply_bytes"] == 30
    assert not led.idle(b"a")
    led.forget(b"a")
    assert led.snapshot() == {"queued_bytes": 0, "reply_bytes": 0, "clients": 0} and led.idle(b"a")


def test_unreserved_replies_of_a_client_over_budget_are_dropped():
    led = ledger()
    led.admit(b"a", 100, 5990)
    assert led.hold(b"a", 10, reserved=False)  # an error reply: fits exactly
    assert not led.hold(b"a", 1, reserved=False)  # the next does not: dropped, the outbox cannot grow
    assert led.hold(b"b", 1, reserved=False)  # another client is not affected


def test_forgetting_a_client_releases_everything_it_held():
    led = ledger()
    led.admit(b"a", 300, 2000)
    led.admit(b"b", 200, 1000)
    led.hold(b"a", 50, reserved=False)
    led.handed(b"a", 70)
    led.forget(b"a")
    assert led.snapshot() == {"queued_bytes": 200, "reply_bytes": 1000, "clients": 1}
    led.release(b"a", 300, 2000)  # a job of the departed client finishing later changes nothing
    assert led.snapshot() == {"queued_bytes": 200, "reply_bytes": 1000, "clients": 1}


def test_memory_config_is_checked_and_named(helpers):
    limits = proto.Limits(max_image_pixels=1000, max_message_bytes=500)
    ok = helpers.load_config(**{"memory.max_queued_bytes": 500, "memory.max_client_reply_bytes": 3 * 4100 + 3 * 4096,
                                "memory.max_reply_bytes": 10**6})
    check_memory_config(ok.memory, limits)
    for field, value, match in (("max_queued_bytes", 499, "max_queued_bytes=499"),
                                ("max_client_reply_bytes", 3 * largest_reply(1000) - 1, "refused forever"),
                                ("max_reply_bytes", 24_400, "exceeds"),
                                ("reply_hwm", 0, "reply_hwm=0"), ("request_hwm", 0, "request_hwm=0")):
        bad = helpers.load_config(**{**{f"memory.{k}": v for k, v in ok.memory.items()}, f"memory.{field}": value})
        with pytest.raises(ValueError, match=match):
            check_memory_config(bad.memory, limits)


def test_cli_refuses_a_budget_that_could_never_admit_a_job():
    from syngrpo_jax.synthesis.local_server import start_local_server

    with pytest.raises(RuntimeError, match="exited with code 2(.|\n)*config.memory.max_client_reply_bytes=1000 "):
        start_local_server("procedural", overrides={"memory.max_client_reply_bytes": 1000}, startup_timeout_s=60)


def test_default_config_is_valid(helpers):
    from synth_torch.server import limits_from_config

    config = helpers.load_config()
    check_memory_config(config.memory, limits_from_config(config.limits))


def test_admin_gate_allows_one_comparison_per_interval_after_a_failure():
    now = [100.0]
    gate = AdminGate(1.0, clock=lambda: now[0])
    assert gate.wait_s() == 0.0
    gate.failed()
    now[0] += 0.25
    assert gate.wait_s() == pytest.approx(0.75)
    now[0] += 0.75
    assert gate.wait_s() == 0.0
