"""Deterministic randomness for the simulated fleet: numbers that depend only on the seed and a key.

Nothing here reads the process's hash seed or global random state, so a run replays exactly in any
process on any machine.

Example:
    >>> units(7, "site", 3) == units(7, "site", 3)
    True
"""

from __future__ import annotations

import hashlib
import random
import struct
from typing import TypeVar

__all__ = ["key_rng", "pick", "units", "weighted"]

_SCALE = 1 / 2**32
_EIGHT_U32 = struct.Struct("<8I").unpack
T = TypeVar("T")


def units(seed: int, *parts: object) -> tuple[float, ...]:
    """Eight numbers in [0, 1) from the seed and `parts` (one BLAKE2b digest)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=32).digest()
    return tuple([x * _SCALE for x in _EIGHT_U32(digest)])


def key_rng(seed: int, *parts: object) -> random.Random:
    """A `random.Random` seeded from the seed and `parts` (string seeding is hash-seed independent)."""
    return random.Random("kcloud-sim/" + "/".join(map(str, (seed, *parts))))


def pick(options: tuple[T, ...], u: float) -> T:
    """The option at position ⌊u·len⌋."""
    return options[min(int(u * len(options)), len(options) - 1)]


def weighted(options: tuple[tuple[T, float], ...], u: float) -> T:
    """The option whose cumulative weight band holds u (weights need not sum to 1)."""
    total = sum(w for _, w in options)
    acc = 0.0
    for option, w in options:
        acc += w / total
        if u < acc:
            return option
    return options[-1][0]
