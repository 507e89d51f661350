"""The benchmarks live in the top-level `bench/` folder, which is not an installed package: put the repository
root on the import path for these tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
