"""megaplane.fleet.columns: per-node values in flat arrays, odd values kept apart, the timer wheel's slots."""

from __future__ import annotations

import math

from megaplane.fleet.columns import ByteSlots, NodeNames, ResourceVersions, TimerWheel


def test_byte_slots_keep_the_usual_width_inline_and_others_apart() -> None:
    slots = ByteSlots(3, 4)
    assert [slots[i] for i in range(3)] == [b"", b"", b""]
    slots[0] = b"abcd"
    slots[1] = b"longer than four"
    assert (slots[0], slots[1], slots[2]) == (b"abcd", b"longer than four", b"")
    slots[1] = b"wxyz"
    slots[0] = b""
    assert (slots[0], slots[1]) == (b"", b"wxyz")


def test_resource_versions_round_trip_exactly() -> None:
    rvs = ResourceVersions(6)
    values = [b"1", b"9223372036854775807", b"0", b"007", b"abc-1", b"9223372036854775808"]
    for i, v in enumerate(values):
        rvs[i] = v
    assert [rvs[i] for i in range(6)] == values
    rvs[3] = b"12"
    rvs[4] = b""
    assert (rvs[3], rvs[4]) == (b"12", b"")


def test_node_names_follow_the_global_index() -> None:
    names = NodeNames("node-", 100, 2)
    assert (names[0], names[1], names.encoded(1), len(names)) == ("node-100", "node-101", b"node-101", 2)


def test_timer_wheel_releases_whole_slots_in_order() -> None:
    wheel = TimerWheel(0.5)
    wheel.push(1, 10.2)
    wheel.push(2, 10.4)
    wheel.push(3, 9.0)
    wheel.push(4, math.inf)
    assert wheel.size == 3 and wheel.next_release() == 9.0
    assert [list(b) for b in wheel.pop_due(8.9)] == []
    assert [list(b) for b in wheel.pop_due(10.0)] == [[3], [1, 2]]
    assert wheel.horizon(10.0) == 10.5 and wheel.size == 0 and wheel.next_release() == math.inf
