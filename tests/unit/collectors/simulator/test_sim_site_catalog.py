"""The simulated fleet's catalogue mirrors the programme: K-Cloud NPU farms, a national centre with GPUs,
company GPU clusters, and device figures that a dashboard can show without looking absurd."""

from __future__ import annotations

import re

from collectors.simulator import DEVICE_PROFILES, SITE_CATALOG, SITES, SimulatedFleet
from kcloud.catalog import load_catalog


def _npu_share(site_id: str) -> float:
    site = next(s for s in SITE_CATALOG if s.site_id == site_id)
    kinds = {p.key: p.kind for p in DEVICE_PROFILES}
    return sum(w for key, w in site.mix if kinds[key] == "npu") / sum(w for _, w in site.mix)


def test_every_site_names_its_operator_and_programme() -> None:
    assert tuple(s.site_id for s in SITE_CATALOG) == SITES
    for site in SITE_CATALOG:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", site.site_id)
        assert site.name and site.operator and site.tenants
        assert site.programme in {"K-Cloud", "national-ai-computing-centre", "private"}
    assert {s.operator for s in SITE_CATALOG if s.programme == "K-Cloud"} == {"KT Cloud", "Naver Cloud", "NHN Cloud"}


def test_k_cloud_sites_are_npu_farms_and_the_others_mostly_gpu() -> None:
    for site in SITE_CATALOG:
        if site.programme == "K-Cloud":
            assert _npu_share(site.site_id) >= 0.75, site.site_id
        else:
            assert _npu_share(site.site_id) <= 0.25, site.site_id


def test_device_figures_are_plausible_and_vendors_are_catalogued() -> None:
    vendors = {v.name: v.domestic for v in load_catalog().vendors}
    for p in DEVICE_PROFILES:
        assert 0 < p.idle_w < p.power_limit_w <= 1200
        assert 8 * 2**30 <= p.mem_total_bytes <= 200 * 2**30
        assert p.clock_mhz_idle < p.clock_mhz_max
        assert p.temp_idle_c < p.temp_full_c < 90
        assert vendors[p.vendor] == (p.kind == "npu")
    models = {p.model for p in DEVICE_PROFILES}
    assert {"NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA B200", "RNGD", "Warboy", "X330"} <= models


def test_nodes_hold_one_model_in_racks_that_share_a_site() -> None:
    fleet = SimulatedFleet(nodes=64, seed=3)
    for rack in range(16):
        nodes = range(4 * rack, 4 * rack + 4)
        assert len({fleet.site(n) for n in nodes}) == 1
        assert len({fleet.profile(n) for n in nodes}) == 1
