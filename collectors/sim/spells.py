"""When simulated things go wrong or move: offline spells, device faults and relocations.

Time is cut into epochs per kind of spell; in each epoch every node draws once (from a generator seeded
by seed, kind and epoch, so node i's draw does not depend on the fleet size) and a drawn node gets one
spell that starts somewhere in that epoch and lasts at most one epoch. Whether a spell is active at `t`
is therefore decided by the spells of the current and the previous epoch only. Rates are higher than in
a real fleet so that a demo of a few hundred nodes shows each kind within minutes:

* offline: 2 % of nodes per 6 h go silent for 5-90 min (about 0.2 % of node-time);
* faults: 3 % of nodes per 6 h have one device degraded (60 %, 10 min-2 h) or failed (30 min-5 h);
* relocations: 3 % of node pairs per day swap one device each, for 2-24 h, then swap back.

Example:
    >>> book = SpellBook(seed=1, nodes=1000, devices=8, partner=lambda n: n ^ 1)
    >>> cond = book.conditions(1_800_007_200.0)
    >>> sorted(cond.offline), len(cond.health), len(cond.moved)  # nodes; devices; swapped slots
    ([59, 959], 11, 10)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from collectors.sim.rand import key_rng, units

__all__ = ["FAULT", "OFFLINE", "RELOCATION", "Conditions", "SpellBook"]


@dataclass(frozen=True)
class _Kind:
    name: str
    epoch_s: int
    rate: float


OFFLINE = _Kind("offline", 6 * 3600, 0.02)
FAULT = _Kind("fault", 6 * 3600, 0.03)
RELOCATION = _Kind("relocation", 24 * 3600, 0.03)
_DEGRADED_SHARE = 0.6
_CACHE_EPOCHS = 12


@dataclass(frozen=True)
class Conditions:
    """What is out of the ordinary at one instant.

    `offline`: nodes that send nothing; `health`: devices, by home (node, slot), that are `degraded` or
    `failed`; `moved`: (node, slot) → the home (node, slot) of the device now sitting there, for both ends
    of every active swap; `special`: nodes whose snapshot differs from their plain layout.
    """

    offline: frozenset[int]
    health: Mapping[tuple[int, int], str]
    moved: Mapping[tuple[int, int], tuple[int, int]]
    special: frozenset[int]


class SpellBook:
    """The spells of a fleet of `nodes` nodes of `devices` devices; `partner(n)` names n's swap partner."""

    def __init__(self, seed: int, nodes: int, devices: int, partner: Callable[[int], int | None]) -> None:
        self.seed = seed
        self.nodes = nodes
        self.devices = devices
        self.partner = partner
        self._hits: dict[tuple[str, int], tuple[int, ...]] = {}

    def hits(self, kind: _Kind, epoch: int) -> tuple[int, ...]:
        """Nodes that drew a spell of `kind` in `epoch`."""
        key = (kind.name, epoch)
        found = self._hits.get(key)
        if found is None:
            draw = key_rng(self.seed, kind.name, epoch).random
            rate = kind.rate
            found = tuple(i for i in range(self.nodes) if draw() < rate)
            if len(self._hits) >= _CACHE_EPOCHS:
                self._hits.pop(next(iter(self._hits)))
            self._hits[key] = found
        return found

    def _spells(self, kind: _Kind, t: float) -> list[tuple[int, tuple[float, ...]]]:
        """(node, its spell units) for spells of `kind` active at t; units[0:2] are start and length."""
        current = int(t // kind.epoch_s)
        active = []
        for epoch in (current - 1, current):
            for node in self.hits(kind, epoch):
                u = units(self.seed, kind.name, epoch, node)
                start = (epoch + u[0]) * kind.epoch_s
                if start <= t < start + self._length(kind, u):
                    active.append((node, u))
        return active

    @staticmethod
    def _length(kind: _Kind, u: tuple[float, ...]) -> float:
        if kind is OFFLINE:
            return 300 + 5100 * u[1] ** 2
        if kind is FAULT:
            return 600 + 6600 * u[1] ** 2 if u[3] < _DEGRADED_SHARE else 1800 + 16200 * u[1]
        return 7200 + (kind.epoch_s - 7200) * u[1]

    def conditions(self, t: float) -> Conditions:
        """Offline nodes, unhealthy devices and swapped devices at unix time t."""
        offline = frozenset(node for node, _ in self._spells(OFFLINE, t))
        health: dict[tuple[int, int], str] = {}
        for node, u in self._spells(FAULT, t):
            key = (node, int(u[2] * self.devices))
            state = "degraded" if u[3] < _DEGRADED_SHARE else "failed"
            if health.get(key) != "failed":
                health[key] = state
        moved: dict[tuple[int, int], tuple[int, int]] = {}
        for node, u in self._spells(RELOCATION, t):
            other = self.partner(node)
            if other is None or other <= node or other >= self.nodes:
                continue  # the pair is drawn by its lower node, and both must exist
            if any((node, s) in moved or (other, s) in moved for s in range(self.devices)):
                continue  # the previous epoch's swap of this pair still runs
            a, b = int(u[2] * self.devices), int(u[3] * self.devices)
            moved[(node, a)] = (other, b)
            moved[(other, b)] = (node, a)
        where = {home: place for place, home in moved.items()}
        special = {node for node, _ in moved} | {where.get(home, home)[0] for home in health}
        return Conditions(offline, health, moved, frozenset(special))
