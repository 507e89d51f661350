"""`kcloud collect SOURCE --file PATH --once --print`: the normalised snapshot as NDJSON on stdout, logs on
stderr, no Kafka. Other tools rely on this contract, so it is run here as they run it: a subprocess of
the real `kcloud` entry point."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcloud.records import NodeSnapshot, parse_snapshot

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"


def kcloud(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCLOUD_")}
    env["KCLOUD_STATE_DIR"] = str(tmp_path / "state")
    env["KCLOUD_KAFKA_BOOTSTRAP"] = "127.0.0.1:9"  # nothing may be sent anywhere
    code = "from console.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _snapshots(stdout: str) -> list[NodeSnapshot]:
    return [parse_snapshot(line) for line in stdout.splitlines()]


@pytest.mark.parametrize(
    ("exporter", "fixture", "devices"),
    [
        ("dcgm", "titan-v-dcgm-exporter-issue58.prom", 2),
        ("furiosa", "rngd-furiosa-exporter-2025.1.prom", 1),
        ("rbln", "rbln-ca25-rbln-exporter-new-names.prom", 3),
    ],
)
def test_prom_file_once_print_writes_one_normalised_snapshot_as_ndjson(
    exporter: str, fixture: str, devices: int, tmp_path: Path
) -> None:
    page = FIXTURES / "prometheus" / fixture
    done = kcloud(
        "collect", "prom", "--map", exporter, "--file", str(page), "--once", "--print",
        "--node-id", "node-7", "--site-id", "kt-cheonan", tmp_path=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (snapshot,) = _snapshots(done.stdout)
    assert snapshot.source == f"prom:{exporter}"
    assert (snapshot.node.node_id, snapshot.node.site_id, snapshot.seq) == ("node-7", "kt-cheonan", 0)
    assert len(snapshot.devices) == devices
    assert snapshot.collected_at.utcoffset() is not None
    line = json.loads(done.stdout)
    assert next(iter(line)) == "schema"  # the wire form, byte for byte what Kafka would get
    assert done.stdout == snapshot.to_json_bytes().decode() + "\n"
    assert not (tmp_path / "state").exists()  # --print touches no spool


def test_nvidia_smi_file_once_print_writes_the_csv_rows_as_devices(tmp_path: Path) -> None:
    csv = FIXTURES / "nvidia_smi" / "h100-sxm5-query-gpu-csv-synthetic.csv"
    done = kcloud("collect", "nvidia-smi", "--file", str(csv), "--once", "--print", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    (snapshot,) = _snapshots(done.stdout)
    assert snapshot.source == "nvidia-smi"
    assert [d.index for d in snapshot.devices] == ["0", "1", "2"]


def test_nvml_capture_file_once_print_replays_the_capture(tmp_path: Path) -> None:
    capture = FIXTURES / "nvml" / "h100-sxm5-mig-capture1-synthetic.json"
    done = kcloud("collect", "nvml", "--file", str(capture), "--once", "--print", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    (snapshot,) = _snapshots(done.stdout)
    assert snapshot.source == "nvml"
    assert any(d.subdevice for d in snapshot.devices)


def _has_nvidia_driver() -> bool:
    try:
        pynvml = importlib.import_module("pynvml")
        pynvml.nvmlInit()
    except Exception:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_has_nvidia_driver(), reason="this host has an NVIDIA driver")
def test_nvml_without_a_driver_says_so_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    done = kcloud("collect", "nvml", "--once", "--print", tmp_path=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("kcloud collect: no NVIDIA driver on this host")


def test_sim_writes_its_ground_truth_sidecar_and_keeps_it_off_the_wire(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    args = ("collect", "sim", "--nodes", "6", "--seed", "4", "--ground-truth", str(truth), "--once", "--print")
    done = kcloud(*args, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(truth.read_text())
    kinds = {d["device_uuid"]: d["true_kind"] for d in doc["devices"]}
    assert len(kinds) == 6 * 8
    on_wire = {dev.device_uuid for s in _snapshots(done.stdout) for dev in s.devices}
    assert on_wire <= set(kinds)
    assert "true_kind" not in done.stdout and "mislabelled" not in done.stdout


def test_sim_once_print_gives_one_snapshot_per_online_node_with_the_same_seq(tmp_path: Path) -> None:
    done = kcloud("collect", "sim", "--nodes", "12", "--seed", "4", "--once", "--print", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    snapshots = _snapshots(done.stdout)
    ids = [s.node.node_id for s in snapshots]
    assert len(ids) == len(set(ids)) and 0 < len(ids) <= 12
    assert {s.seq for s in snapshots} == {0}
    assert {s.source for s in snapshots} == {"sim"}
    assert all(len(s.devices) == 8 for s in snapshots)


def test_collect_help_lists_every_source(tmp_path: Path) -> None:
    done = kcloud("collect", "--help", tmp_path=tmp_path)
    assert done.returncode == 0
    for source in ("nvml", "nvidia-smi", "prom", "sim"):
        assert source in done.stdout
