"""Capture this host's NVML readings as a JSON fixture: `python -m collectors.nvml_capture OUT.json`.

The file is what `NvmlCollector.fetch()` returns (format `kcloud.nvml-capture/1`), so the tests can
replay a real GPU through `parse_readings`. Name it `<hardware>-capture1.json` (e.g.
`h100-sxm5-mig-capture1.json`) under `tests/fixtures/nvml/` and note in that folder's README the host,
driver version and the command used. Exit status 2 when the host has no NVIDIA driver.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collectors.base import CollectorError
from collectors.nvml import NvmlConfig, capture_readings, dump_capture

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one capture and write it; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m collectors.nvml_capture", description=__doc__)
    parser.add_argument("out", type=Path, help="JSON file to write")
    parser.add_argument("--no-mig", action="store_true", help="do not read MIG instances")
    args = parser.parse_args(argv)
    try:
        raw = capture_readings(NvmlConfig(include_mig=not args.no_mig))
    except CollectorError as exc:
        print(f"nvml_capture: {exc}", file=sys.stderr)
        return 2
    dump_capture(raw, args.out)
    print(f"nvml_capture: wrote {len(raw.get('devices', []))} GPU(s) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
