"""What the simulated fleet is made of: sites, accelerator models, tenants and workloads.

The sites are modelled on Korea's sovereign-AI compute programme: the K-Cloud NPU farms (KT Cloud with
Rebellions, Naver Cloud with FuriosaAI, NHN Cloud with Sapeon), the national AI computing centre, and
company GPU clusters. Names, operators and programmes are a plausible picture for demos, not a register
of real installations; device figures (memory, power limit, idle power, throughput) are rounded from
public datasheets where one exists and invented where none does. Everything here is synthetic.

Example:
    >>> [s.site_id for s in SITE_CATALOG if s.programme == "K-Cloud"]
    ['kt-cloud-cheonan', 'naver-cloud-chuncheon', 'nhn-cloud-gwangju']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEVICE_PROFILES",
    "OPEN_MODELS",
    "PROFILES_BY_KEY",
    "SITE_CATALOG",
    "TENANT_MODELS",
    "VISION_MODELS",
    "WORKLOADS",
    "DeviceProfile",
    "Site",
    "Workload",
]

_GIB = 2**30
_MIB = 2**20


@dataclass(frozen=True)
class DeviceProfile:
    """One accelerator model as the simulator draws it (figures approximate, see the module docstring)."""

    key: str
    vendor: str
    kind: str
    model: str
    arch: str
    mem_total_bytes: int
    power_limit_w: float
    idle_w: float
    tokens_per_s_at_full: float  # an 8B-class LLM at full load, batched serving
    clock_mhz_max: int
    clock_mhz_idle: int
    temp_idle_c: int
    temp_full_c: int
    vision_only: bool = False  # runs CNN vision models (images/s), not LLMs
    video: bool = False  # has hardware video encoders (non-AI transcoding work)


DEVICE_PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile("h100", "nvidia", "gpu", "NVIDIA H100 80GB HBM3", "hopper", 81559 * _MIB,
                  700.0, 72.0, 6000.0, 1980, 345, 33, 71, video=True),
    DeviceProfile("h200", "nvidia", "gpu", "NVIDIA H200", "hopper", 143771 * _MIB,
                  700.0, 78.0, 7500.0, 1980, 345, 34, 72, video=True),
    DeviceProfile("b200", "nvidia", "gpu", "NVIDIA B200", "blackwell", 183359 * _MIB,
                  1000.0, 140.0, 12000.0, 1965, 600, 35, 74, video=True),
    DeviceProfile("rngd", "furiosa", "npu", "RNGD", "rngd", 48 * _GIB, 180.0, 38.0, 3000.0, 1000, 500, 31, 63),
    DeviceProfile("warboy", "furiosa", "npu", "Warboy", "warboy", 16 * _GIB, 60.0, 12.0, 800.0, 2000, 800,
                  30, 58, vision_only=True),
    DeviceProfile("atom", "rebellions", "npu", "RBLN-CA22", "atom", 16 * _GIB, 130.0, 25.0, 1200.0, 1500, 600,
                  31, 64),
    DeviceProfile("rebel", "rebellions", "npu", "RBLN-CR13", "rebel", 144 * _GIB, 600.0, 90.0, 6500.0, 1800,
                  700, 33, 70),
    DeviceProfile("x330", "sapeon", "npu", "X330", "x330", 32 * _GIB, 250.0, 40.0, 1500.0, 1200, 500, 32, 66),
)  # fmt: skip
PROFILES_BY_KEY = {p.key: p for p in DEVICE_PROFILES}


@dataclass(frozen=True)
class Site:
    """A site of the simulated fleet: who runs it, under which programme, what it holds, who uses it.

    `weight` is its share of the fleet's nodes; `mix` the share of each device profile among its nodes
    (a node holds one model); `tenants` the organisations allocated devices there, and `video_tenants`
    those that run non-AI transcoding on its GPUs.
    """

    site_id: str
    name: str
    operator: str
    programme: str
    weight: float
    mix: tuple[tuple[str, float], ...]
    tenants: tuple[str, ...]
    video_tenants: tuple[str, ...] = ()


_PUBLIC = ("msit", "mois", "mohw", "kma", "nia", "kisti", "etri", "seoul-metropolitan-gov")
_NATIONAL = ("naver", "lg-ai-research", "sk-telecom", "upstage", "nc-ai", "kt", "kakao", "kisti", "etri",
             "snu", "kaist", "postech", "yonsei", "korea-univ", "unist")  # fmt: skip

SITE_CATALOG: tuple[Site, ...] = (
    Site("kt-cloud-cheonan", "KT Cloud Cheonan AI data centre (NPU farm)", "KT Cloud", "K-Cloud", 0.09,
         (("atom", 0.55), ("rebel", 0.30), ("h100", 0.15)), (*_PUBLIC, "kt", "upstage", "kaist")),
    Site("naver-cloud-chuncheon", "Naver Cloud GAK Chuncheon (NPU farm)", "Naver Cloud", "K-Cloud", 0.09,
         (("rngd", 0.50), ("warboy", 0.30), ("h100", 0.20)), (*_PUBLIC, "naver", "snu", "yonsei")),
    Site("nhn-cloud-gwangju", "NHN Cloud Gwangju AI data centre (NPU farm)", "NHN Cloud", "K-Cloud", 0.07,
         (("x330", 0.60), ("atom", 0.20), ("h100", 0.20)), (*_PUBLIC, "nhn", "gist", "chonnam-univ")),
    Site("national-aicc-haenam", "National AI Computing Centre, Haenam", "National AI Computing Centre",
         "national-ai-computing-centre", 0.25, (("b200", 0.60), ("h200", 0.25), ("rngd", 0.10), ("rebel", 0.05)),
         _NATIONAL, ("kbs", "ebs")),
    Site("national-aidc-gwangju", "National AI Data Centre, Gwangju", "AICA", "national-ai-computing-centre",
         0.10, (("h100", 0.80), ("rngd", 0.10), ("atom", 0.10)), (*_NATIONAL, "gist"), ("kbs",)),
    Site("naver-gak-sejong", "Naver GAK Sejong GPU cluster", "Naver", "private", 0.12,
         (("h100", 0.50), ("h200", 0.30), ("b200", 0.20)), ("naver",), ("naver",)),
    Site("skt-haein-gasan", "SK Telecom Haein GPU cluster, Gasan", "SK Telecom", "private", 0.10,
         (("h200", 0.70), ("b200", 0.20), ("atom", 0.10)), ("sk-telecom", "upstage", "twelve-labs"),
         ("sk-broadband",)),
    Site("kakao-ansan", "Kakao data centre Ansan GPU cluster", "Kakao", "private", 0.08,
         (("h100", 0.70), ("h200", 0.30)), ("kakao",), ("kakao",)),
    Site("lg-ai-research-magok", "LG AI Research GPU cluster, Magok", "LG AI Research", "private", 0.05,
         (("h100", 0.40), ("b200", 0.60)), ("lg-ai-research", "lg-uplus")),
)  # fmt: skip


@dataclass(frozen=True)
class Workload:
    """A named model served (or trained) on a device; `factor` scales the profile's 8B-class tokens/s."""

    name: str
    factor: float
    unit: str = "tokens/s"


# A tenant's own model where it has one (the national foundation-model teams), else an open model.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("llama-3.1-8b-instruct", 1.0),
        Workload("qwen2.5-7b-instruct", 1.05),
        Workload("exaone-4.0-32b", 0.28),
        Workload("exaone-3.5-7.8b-instruct", 1.0),
        Workload("hyperclova-x-seed-8b", 0.95),
        Workload("a.x-4.0-72b", 0.12),
        Workload("solar-pro-2-31b", 0.3),
        Workload("kanana-1.5-8b", 0.95),
        Workload("midm-2.0-11.5b", 0.7),
        Workload("varco-llm-2.0-13b", 0.62),
        Workload("koni-llama3.1-8b", 1.0),
        Workload("eagle-3b", 2.1),
        Workload("yolov8m-detect", 1.0, "images/s"),
        Workload("resnet50-classify", 2.5, "images/s"),
        Workload("video-transcode", 1.0, "streams"),
    )
}

# tenant → the model it serves; tenants not named here serve the open models in _OPEN_MODELS
TENANT_MODELS: dict[str, str] = {
    "naver": "hyperclova-x-seed-8b",
    "lg-ai-research": "exaone-4.0-32b",
    "lg-uplus": "exaone-3.5-7.8b-instruct",
    "sk-telecom": "a.x-4.0-72b",
    "upstage": "solar-pro-2-31b",
    "kakao": "kanana-1.5-8b",
    "kt": "midm-2.0-11.5b",
    "nc-ai": "varco-llm-2.0-13b",
    "kisti": "koni-llama3.1-8b",
    "etri": "eagle-3b",
    "msit": "exaone-3.5-7.8b-instruct",
}
OPEN_MODELS = ("llama-3.1-8b-instruct", "qwen2.5-7b-instruct", "exaone-3.5-7.8b-instruct")
VISION_MODELS = ("yolov8m-detect", "resnet50-classify")
