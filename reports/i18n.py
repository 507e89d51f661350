"""Words of the reports in English and Korean: section and column titles, and the definitions printed
with every figure. Ids are the same in both languages (they are what JSON, CSV and `verify` use).

Example:
    >>> label("availability", "ko")
    '2. 가용성'
"""

from __future__ import annotations

__all__ = ["DEFINITIONS", "LABELS", "definition", "label"]

LABELS: dict[str, tuple[str, str]] = {
    # report and section titles
    "evidence": ("K-Cloud deployment evidence report", "K-클라우드 실증 근거 보고서"),
    "allocation": ("K-Cloud allocation report", "K-클라우드 자원 할당 보고서"),
    "inventory": ("1. Inventory", "1. 보유 현황"),
    "availability": ("2. Availability", "2. 가용성"),
    "utilization": ("3. Utilization", "3. 활용률"),
    "service": ("4. Service evidence", "4. 서비스 실적"),
    "energy": ("5. Energy and efficiency", "5. 에너지와 효율"),
    "completeness": ("6. Telemetry completeness", "6. 텔레메트리 완전성"),
    "provenance": ("7. Provenance", "7. 출처"),
    "tenants": ("1. Allocation by organisation", "1. 기관별 할당"),
    "workload_mix": ("2. Workload mix", "2. 워크로드 구성"),
    "returnable": ("3. Allocations that could be returned to the pool", "3. 반납 가능한 할당"),
    # tables
    "utilization_distribution": ("Utilization across devices", "장치별 활용률 분포"),
    "efficiency": ("Throughput per watt beside the GPU baseline", "와트당 처리량과 GPU 기준 비교"),
    "completeness_vendor": ("Per vendor feed", "벤더 피드별"),
    "completeness_site": ("Per site", "사이트별"),
    "data_gaps": ("Data gaps", "데이터 공백"),
    # columns
    "vendor": ("Vendor", "벤더"),
    "site": ("Site", "사이트"),
    "model": ("Model", "모델"),
    "firmware": ("Firmware", "펌웨어"),
    "period": ("Period", "기간"),
    "workload": ("Workload", "워크로드"),
    "unit": ("Unit", "단위"),
    "tenant": ("Organisation", "기관"),
    "namespace": ("Namespace", "네임스페이스"),
    "rank": ("Rank", "순위"),
    "device": ("Device", "장치"),
    "item": ("Item", "항목"),
    "value": ("Value", "값"),
    "n": ("No.", "번호"),
    "gap": ("Gap", "공백"),
    "cards": ("Cards in service", "운영 카드 수"),
    "in_service_hours": ("In-service card-hours", "운영 카드-시간"),
    "available_hours": ("Available card-hours", "가용 카드-시간"),
    "planned_hours": ("Planned out-of-service card-hours", "계획 중단 카드-시간"),
    "unplanned_down_hours": ("Unplanned downtime card-hours", "비계획 중단 카드-시간"),
    "availability_pct": ("Availability", "가용률"),
    "failures": ("Failures", "장애 건수"),
    "failures_per_1000_card_days": ("Failures per 1,000 card-days", "1,000 카드-일당 장애"),
    "mtbf_hours": ("MTBF", "평균 고장 간격"),
    "mttr_hours": ("MTTR", "평균 복구 시간"),
    "observed_hours": ("Observed card-hours", "관측 카드-시간"),
    "busy_pct": ("Device-busy", "장치 사용률"),
    "busy_hours": ("Busy card-hours", "사용 카드-시간"),
    "allocated_hours": ("Allocated card-hours", "할당 카드-시간"),
    "allocated_busy_hours": ("Busy card-hours while allocated", "할당 중 사용 카드-시간"),
    "idle_cards": ("Idle cards", "유휴 카드"),
    "p10_pct": ("p10", "p10"),
    "p50_pct": ("p50", "p50"),
    "p90_pct": ("p90", "p90"),
    "served": ("Served", "처리량"),
    "served_unit": ("Served unit", "처리 단위"),
    "serving_hours": ("Serving card-hours", "서비스 카드-시간"),
    "mean_rate": ("Mean rate while serving", "서비스 중 평균 속도"),
    "energy_kwh": ("Energy", "전력량"),
    "mean_power_w": ("Mean power", "평균 전력"),
    "counter_pct": ("From energy counters", "에너지 카운터 기반"),
    "energy_source": ("Energy source", "전력량 출처"),
    "per_watt": ("Throughput per watt", "와트당 처리량"),
    "gpu_per_watt": ("GPU baseline per watt", "GPU 기준 와트당 처리량"),
    "ratio_to_gpu": ("Ratio to GPU", "GPU 대비 비율"),
    "comparison": ("Comparison", "비교 조건"),
    "expected": ("Samples expected", "예상 샘플"),
    "received": ("Samples received", "수신 샘플"),
    "completeness_pct": ("Completeness", "완전성"),
    "allocations": ("Allocations", "할당 수"),
    "idle_allocations": ("Idle allocations", "유휴 할당"),
    "share_pct": ("Share of serving time", "서비스 시간 비중"),
    "reason": ("Why", "사유"),
}

DEFINITIONS: dict[str, tuple[str, str]] = {
    "inventory": (
        "A card is in service from its first sample until it is decommissioned (and again once it returns); "
        "planned time out of service (decommissioned, planned maintenance) is counted apart. Available "
        "card-hours are in-service card-hours less unplanned downtime. Firmware is not carried by the telemetry "
        "yet and shows as 'not reported'. A card's site is the one its newest ledger event in the period names.",
        "카드는 첫 샘플부터 폐기될 때까지(복귀하면 다시) 운영 중으로 봅니다. 계획된 중단(폐기, 계획 정비)은 따로 "
        "셉니다. 가용 카드-시간은 운영 카드-시간에서 비계획 중단을 뺀 값입니다. 펌웨어는 아직 텔레메트리에 없어 "
        "'미보고'로 표시합니다. 카드의 사이트는 기간 중 가장 최근 원장 이벤트가 가리키는 사이트입니다.",
    ),
    "availability": (
        "Unplanned downtime is an offline spell (from the first missed sample, one interval after the last "
        "one, until the card returns) or a failed-health spell (health_changed to failed until the next change), "
        "from the deployment ledger; overlapping spells are one outage. Availability = (in-service - unplanned "
        "downtime) / in-service. A failure is an outage starting in the period; MTBF = available card-hours / "
        "failures; MTTR = unplanned downtime / outages overlapping the period. Planned time is excluded.",
        "비계획 중단은 배치 원장의 오프라인 구간(마지막 샘플 다음 주기부터 복귀까지)과 고장 상태 구간(health_changed "
        "고장부터 다음 변경까지)이며, 겹치는 구간은 하나의 장애로 봅니다. 가용률 = (운영 - 비계획 중단) / 운영. "
        "장애는 기간 안에 시작된 중단이며, MTBF = 가용 카드-시간 / 장애 건수, MTTR = 비계획 중단 / 기간과 겹친 "
        "중단 건수입니다. 계획된 중단은 제외합니다.",
    ),
    "utilization": (
        "Device-busy is the time-weighted mean utilization: the mean of each rollup bucket (hour or day; minutes "
        "at the edges) weighted by its observed seconds; a bucket with no utilization at all (a failed card) is "
        "left out, one partly without counts its mean for all its observed time. Busy card-hours = sum of "
        "utilization x observed hours. Allocated card-hours are observed hours while an organisation held the "
        "card (device_allocations, the allocation in force at each rollup bucket's end). An idle card is in "
        "service with a device-busy at or below the active threshold (KCLOUD_ACTIVE_UTIL_PCT). "
        "p10/p50/p90 are percentiles (linear interpolation) of each card's device-busy.",
        "장치 사용률은 시간 가중 평균 활용률입니다: 롤업 구간(시간 또는 일, 경계는 분)의 평균을 관측 초로 가중하며, "
        "활용률이 전혀 없는 구간(고장 카드)은 빼고, 일부만 없는 구간은 그 평균을 관측 시간 전체에 적용합니다. "
        "사용 카드-시간 = 활용률 x 관측 시간의 합. 할당 카드-시간은 기관이 카드를 보유한 동안의 관측 "
        "시간입니다(device_allocations, 각 롤업 구간 끝 시점의 할당). 유휴 카드는 장치 사용률이 활성 "
        "임계값(KCLOUD_ACTIVE_UTIL_PCT) 이하인 운영 카드입니다. "
        "p10/p50/p90은 카드별 사용률의 백분위수(선형 보간)입니다.",
    ),
    "service": (
        "Throughput pushed with the samples (device_samples.throughput, per workload). A rate such as tokens/s "
        "is integrated over time (each sample stands for one sample interval) into tokens served; a level such "
        "as streams into stream-hours. Serving card-hours are the sample time that carried the workload.",
        "샘플과 함께 보고된 처리량(device_samples.throughput, 워크로드별)입니다. tokens/s 같은 속도는 시간으로 "
        "적분해(샘플 하나가 한 주기) 처리한 토큰 수로, streams 같은 수준은 스트림-시간으로 셉니다. 서비스 "
        "카드-시간은 해당 워크로드를 실은 샘플 시간입니다.",
    ),
    "energy": (
        "kWh from the device's own energy counter where it reports one, otherwise power integrated over the "
        "observed time (the share from counters is shown). Throughput per watt = served units / joules, i.e. "
        "(units/s) per W; a bucket's energy is shared among its workloads by sample share. The GPU baseline is "
        "the same workload on the GPUs of the same site in the same period; the ratio is this group's figure "
        "over the baseline, and is left empty, with the reason, when no fair comparison exists.",
        "장치 자체 에너지 카운터가 있으면 그 값을, 없으면 관측 시간 동안 전력을 적분한 값을 kWh로 씁니다(카운터 "
        "비중 표시). 와트당 처리량 = 처리 단위 / 줄, 즉 W당 (단위/초)입니다. 구간의 에너지는 샘플 비중으로 "
        "워크로드에 나눕니다. GPU 기준은 같은 기간, 같은 사이트 GPU의 같은 워크로드이며, 비율은 이 그룹 값 / 기준 "
        "값입니다. 공정한 비교가 없으면 비워 두고 이유를 적습니다.",
    ),
    "completeness": (
        "Samples expected = in-service seconds / the nominal sample interval (KCLOUD_SAMPLE_INTERVAL_S); samples "
        "received are those stored in the rollups. Unplanned downtime shows here as missing samples.",
        "예상 샘플 = 운영 초 / 명목 수집 주기(KCLOUD_SAMPLE_INTERVAL_S), 수신 샘플은 롤업에 저장된 샘플입니다. "
        "비계획 중단은 여기서 누락 샘플로 나타납니다.",
    ),
    "provenance": (
        "The report was built from the deployment ledger up to the head named here (row count and hash of the "
        "newest row; rows appended later are not read) and from the rollups. `kcloud report verify FILE` "
        "rebuilds a JSON or CSV report from the database and names the first figure that differs. Stored "
        "values outside the metric catalogue's physical ranges (infinite, NaN, negative, or above what a device "
        "can do) are left out of the figures; each 'data quality' gap says how many and why.",
        "이 보고서는 여기 적힌 헤드(행 수와 최신 행의 해시, 이후 추가된 행은 읽지 않음)까지의 배치 원장과 롤업으로 "
        "만들었습니다. `kcloud report verify FILE`은 JSON 또는 CSV 보고서를 데이터베이스에서 다시 만들어 처음 "
        "다른 수치를 알려 줍니다. 지표 카탈로그의 물리적 범위를 벗어난 저장 값(무한대, NaN, 음수, 장치가 낼 수 없는 "
        "값)은 수치에서 제외하며, 각 'data quality' 공백 항목에 제외한 수와 이유를 적습니다.",
    ),
    "tenants": (
        "Per organisation (the tenant the devices report): allocated card-hours are observed hours while the "
        "organisation held the card (the allocation in force at each rollup bucket's end); busy card-hours are "
        "utilization x those hours. An idle allocation's device-busy stayed at or below KCLOUD_ACTIVE_UTIL_PCT.",
        "기관(장치가 보고한 tenant)별: 할당 카드-시간은 기관이 카드를 보유한 동안의 관측 시간(각 롤업 구간 끝 "
        "시점의 할당), 사용 카드-시간은 그 시간 x 활용률입니다. 유휴 할당은 사용률이 KCLOUD_ACTIVE_UTIL_PCT 이하인 "
        "할당입니다.",
    ),
    "workload_mix": (
        "What each organisation's cards served, per workload, and each workload's share of the organisation's "
        "serving time.",
        "기관 카드가 워크로드별로 처리한 양과 기관 서비스 시간 중 각 워크로드의 비중입니다.",
    ),
    "returnable": (
        "Idle allocations, largest first: allocated card-hours with a device-busy at or below "
        "KCLOUD_ACTIVE_UTIL_PCT; those that served nothing come before those that served a little.",
        "유휴 할당을 큰 순서로 나열합니다: 사용률이 KCLOUD_ACTIVE_UTIL_PCT 이하인 할당 카드-시간이며, 아무것도 "
        "처리하지 않은 할당이 먼저 옵니다.",
    ),
}


def label(key: str, lang: str) -> str:
    """The title of a report, section, table or column in `lang` (the id itself when none is defined)."""
    pair = LABELS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "ko" else pair[0]


def definition(key: str, lang: str) -> str | None:
    """The definition printed under a section, if it has one."""
    pair = DEFINITIONS.get(key)
    if pair is None:
        return None
    return pair[1] if lang == "ko" else pair[0]
