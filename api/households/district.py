"""The district as data: the 10 towns (镇街) and 280 villages (村居) of the 2020 plan's table.

Source: 附件2 任务分配表 of the collection plan, restated in DOMAIN.md "Targets". The plan names
the towns and gives each one's village count and targets; it does not name the villages, so
their names here are synthetic but deterministic (the same on every machine and every run),
and so are the codes, which follow the 12-digit statistical-division shape: Shanting's region
code 370406, a 3-digit town part (001 for the 街道, 101.. for the 镇) and a 3-digit village part
(201.. for 村委会, as in the national scheme). The third figure of each row is read as the
pension new-enrollee target (DOMAIN.md, footnote of the table); the medical amount is stored in
fen (yuan × 100).

`ensure_district(session)` creates whatever towns and villages are missing (idempotent), so the
roster import can rely on every village of the table existing (roster.py refuses unknown ones).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.households.models import Town, Village

REGION_CODE = "370406"  # 山亭区 (GB/T 2260)


@dataclass(frozen=True)
class TownSpec:
    """One row of the plan's target table (附件2)."""

    code: str
    name: str
    villages: int
    target_pension_persons: int
    target_pension_new_persons: int  # the row's third figure (DOMAIN.md: 新增人数)
    target_medical_persons: int
    target_medical_amount_yuan: int

    @property
    def target_medical_amount_fen(self) -> int:
        return self.target_medical_amount_yuan * 100


@dataclass(frozen=True)
class VillageSpec:
    code: str
    name: str


TOWNS: tuple[TownSpec, ...] = (
    TownSpec(f"{REGION_CODE}001", "山城街道办", 53, 17800, 665, 83825, 21794500),
    TownSpec(f"{REGION_CODE}101", "西集镇", 15, 6370, 249, 29079, 7560540),
    TownSpec(f"{REGION_CODE}102", "城头镇", 21, 13430, 457, 39796, 10346960),
    TownSpec(f"{REGION_CODE}103", "桑村镇", 22, 15110, 557, 56146, 14597960),
    TownSpec(f"{REGION_CODE}104", "凫城镇", 18, 6620, 214, 26753, 6955780),
    TownSpec(f"{REGION_CODE}105", "北庄镇", 21, 13270, 407, 37579, 9770540),
    TownSpec(f"{REGION_CODE}106", "水泉镇", 36, 12990, 425, 38045, 9891700),
    TownSpec(f"{REGION_CODE}107", "冯卯镇", 35, 13230, 432, 48666, 12653160),
    TownSpec(f"{REGION_CODE}108", "店子镇", 17, 11300, 360, 28126, 7312760),
    TownSpec(f"{REGION_CODE}109", "徐庄镇", 42, 18330, 559, 49839, 12958140),
)

# The table's printed totals: a check that the rows above were copied right (tests assert it).
TOTALS = {
    "villages": 280,
    "target_pension_persons": 128450,
    "target_pension_new_persons": 4325,
    "target_medical_persons": 437854,
    "target_medical_amount_yuan": 113842040,
}

_NAME_PREFIXES = (
    "东西南北前后上下大小"
    "王张李刘孙陈杨赵徐马朱胡郭何高林郑梁谢宋唐许韩冯邓曹彭田董袁潘于蒋蔡杜程苏魏吕丁"
    "任姚卢姜崔孟秦薛闫段侯史贾石邵孔颜褚殷种"
)
_NAME_SUFFIXES = ("庄", "楼", "峪", "岭", "沟", "湾", "店", "集", "河", "屯", "埠", "洼", "崖",
                  "山", "官庄", "营", "寨", "泉", "林", "家庄", "疃", "坡")  # fmt: skip


def village_specs(town: TownSpec) -> list[VillageSpec]:
    """The town's villages: deterministic synthetic names, unique within the town."""
    rng = random.Random(f"district:{town.code}")  # fixed seed: names are data, not demo noise
    # 街道 villages are partly urban residents' committees (社区, codes 001..), the rest village
    # committees (村, codes 201..), as in the national division-code scheme.
    communities = 12 if town.name.endswith("街道办") else 0
    specs: list[VillageSpec] = []
    seen: set[str] = set()
    while len(specs) < town.villages:
        stem = rng.choice(_NAME_PREFIXES) + rng.choice(_NAME_SUFFIXES)
        i = len(specs)
        if i < communities:
            name, number = stem + "社区", 1 + i
        else:
            name, number = stem + "村", 201 + i - communities
        if name not in seen:
            seen.add(name)
            specs.append(VillageSpec(f"{town.code}{number:03d}", name))
    return specs


def ensure_district(session: Session) -> tuple[int, int]:
    """Create the plan's towns and villages that are missing; return (towns, villages) created.

    Existing towns keep their rows but get the table's targets (the table is the source of
    truth for them); existing villages are matched by code and left as they are.
    """
    towns = {t.code: t for t in session.scalars(select(Town))}
    village_codes = set(session.scalars(select(Village.code)))
    towns_created = villages_created = 0
    for spec in TOWNS:
        town = towns.get(spec.code)
        if town is None:
            town = Town(code=spec.code, name=spec.name)
            session.add(town)
            towns_created += 1
        town.target_pension_persons = spec.target_pension_persons
        town.target_pension_new_persons = spec.target_pension_new_persons
        town.target_medical_persons = spec.target_medical_persons
        town.target_medical_amount_fen = spec.target_medical_amount_fen
        session.flush()
        for village in village_specs(spec):
            if village.code not in village_codes:
                session.add(Village(town_id=town.id, code=village.code, name=village.name))
                villages_created += 1
    session.flush()
    return towns_created, villages_created
