"""The gateway's memory of registrations stays small and current: at most `size` entries of each kind,
each forgotten after `ttl_s` (an operator's change to an owner is seen then)."""

from __future__ import annotations

from gateway.owners import _TtlMap


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_are_forgotten_after_their_ttl_and_the_oldest_go_first_when_full() -> None:
    clock = _Clock()
    owners: _TtlMap[str] = _TtlMap(size=3, ttl_s=60.0, clock=clock)
    for uuid in ("a", "b", "c"):
        owners.put(uuid, "rebellions")
    clock.now = 30.0
    owners.put("d", "furiosa")
    assert len(owners) == 3 and owners.get("a") is None and owners.get("d") == "furiosa"
    clock.now = 60.0
    assert owners.get("b") is None and owners.get("c") is None, "read 60 s ago: read again"
    assert owners.get("d") == "furiosa"
    clock.now = 90.0
    assert owners.get("d") is None and len(owners) == 0
