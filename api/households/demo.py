"""The demo district 演示数据: synthetic residents of the plan's 10 towns and 280 villages.

At `scale=1` each town gets as many persons as its medical target (DOMAIN.md "Targets"), so the
district totals 437,854 persons, the size the import must handle (bench/roster_import.py). The
households are built to look like a rural Shandong district: an old-heavy age pyramid (many
45–70, fewer children), households of 1–6 (elderly singles and couples, couples with children,
three generations), about 2% 低保, 1% 特困 (mostly elderly living alone), 2% severe disability,
3% 建档立卡 (a third not yet out of poverty), students among the 16–22-year-olds, about 5%
in employee insurance, some residence-permit households and some deaths in 2019.

Everything is generated from `seed` (same seed, same district) as roster rows, and loaded
through `import_roster`: the demo exercises the same validation and bulk writer as a real file.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate

from sqlalchemy.orm import Session

from api.households.district import REGION_CODE, TOWNS, ensure_district, village_specs
from api.households.roster import ImportReport, import_roster
from api.households.roster_files import RosterRow
from api.policy.idnumber import make_id_number

AGE_REFERENCE = date(2020, 1, 1)  # the 2020 policy's age_reference_date (DOMAIN.md "Ages")

SURNAMES = (
    "王张李刘孙陈杨赵徐马朱胡郭何高林郑梁谢宋唐许韩冯邓曹彭田董袁潘于蒋蔡杜程苏魏吕丁任姚卢"
    "姜崔孟秦薛闫段侯史贾石邵孔颜褚殷种"
)
# Rough weights: the first dozen surnames cover about half of northern China.
_SURNAME_WEIGHTS = tuple(accumulate(8.0 if i < 12 else 1.5 for i in range(len(SURNAMES))))
MALE_CHARS = "伟强磊军勇杰涛斌刚明超辉华建国平东海波鹏飞成龙庆志文永林德福祥贵春"
FEMALE_CHARS = "芳娟敏静丽艳霞红梅玲燕萍莉华英秀兰凤云琴洁倩雪慧桂荣淑珍彩玉"

# Household sizes 1..6 (rural Shandong: many old couples and singles, few large households).
_SIZE_WEIGHTS = tuple(accumulate((14, 30, 21, 19, 11, 5)))
# Age of the head of a couple-based household, by band: old-heavy.
_HEAD_BANDS = ((28, 34, 6), (35, 44, 14), (45, 54, 26), (55, 64, 28), (65, 74, 18), (75, 88, 8))
_HEAD_WEIGHTS = tuple(accumulate(w for _lo, _hi, w in _HEAD_BANDS))


@dataclass
class _Member:
    age: int
    male: bool
    surname: str


class _IdNumbers:
    """Valid, unique ID numbers: a sequence per birth date and sex (GB 11643-1999 digit 17)."""

    def __init__(self) -> None:
        self._next: dict[tuple[date, bool], int] = {}

    def make(self, birth: date, male: bool) -> str:
        while True:
            n = self._next.get((birth, male), 0)
            seq = 2 * n + (1 if male else 2)
            if seq <= 999:
                self._next[(birth, male)] = n + 1
                return make_id_number(REGION_CODE, birth, seq)
            birth += timedelta(days=1)


def _given_name(rng: random.Random, male: bool) -> str:
    chars = MALE_CHARS if male else FEMALE_CHARS
    if rng.random() < 0.7:
        return rng.choice(chars) + rng.choice(chars)
    return rng.choice(chars)


def _surname(rng: random.Random) -> str:
    return rng.choices(SURNAMES, cum_weights=_SURNAME_WEIGHTS)[0]


def _household(rng: random.Random, size: int) -> list[_Member]:
    """Members of one household; the head first."""
    surname = _surname(rng)
    if size == 1:  # mostly the elderly living alone
        age = rng.randint(62, 92) if rng.random() < 0.7 else rng.randint(25, 61)
        return [_Member(age, rng.random() < 0.45, surname)]
    lo, hi, _w = rng.choices(_HEAD_BANDS, cum_weights=_HEAD_WEIGHTS)[0]
    head = rng.randint(lo, hi)
    if size == 2 and head < 45 and rng.random() < 0.5:
        head += 20  # young two-person households are rare: make it an older couple
    members = [
        _Member(head, True, surname),
        _Member(max(20, head + rng.randint(-4, 2)), False, _surname(rng)),
    ]
    rest = size - 2
    # Three generations: an elder parent when the head is young enough to have one.
    elders = 0
    if rest and head <= 60 and rng.random() < (0.5 if rest >= 3 else 0.25):
        elders = 2 if rest >= 4 and rng.random() < 0.6 else 1
    for _ in range(elders):
        members.append(_Member(min(96, head + rng.randint(22, 32)), rng.random() < 0.4, surname))
    for _ in range(rest - elders):
        age = head - rng.randint(22, 34)
        if age < 0:
            age = rng.randint(0, 6)
        members.append(_Member(age, rng.random() < 0.52, surname))
    return members


def _birth_date(rng: random.Random, age: int, today: date) -> date:
    birth = AGE_REFERENCE.replace(year=AGE_REFERENCE.year - age) - timedelta(
        days=rng.randint(1, 364)
    )
    if birth >= today:  # a newborn when the demo's date is pinned early in the window
        birth = today - timedelta(days=rng.randint(1, 200))
    return birth


def generate_roster(scale: float, seed: int, *, today: date) -> Iterator[RosterRow]:
    """The demo district as roster rows, town by town (line numbers as in an exported file)."""
    rng = random.Random(seed)
    ids = _IdNumbers()
    last_death = min(date(2019, 9, 30), today - timedelta(days=1))
    death_span = max(0, (last_death - date(2019, 1, 1)).days)
    line = 1
    for town in TOWNS:
        villages = village_specs(town)
        cum = tuple(accumulate(rng.uniform(0.5, 1.5) for _ in villages))
        numbers = [0] * len(villages)
        target = round(town.target_medical_persons * scale)
        persons = 0
        while persons < target:
            size = min(rng.choices(range(1, 7), cum_weights=_SIZE_WEIGHTS)[0], target - persons)
            v = rng.choices(range(len(villages)), cum_weights=cum)[0]
            numbers[v] += 1
            household_no = f"{numbers[v]:04d}"
            poor = rng.random()
            household_categories = (
                ["poverty_registered"] if poor < 0.01
                else ["poverty_lifted"] if poor < 0.03
                else []
            )  # fmt: skip
            if rng.random() < 0.02:
                household_categories.append("dibao")
            permit = rng.random() < 0.01
            for member in _household(rng, size):
                age = member.age
                birth = _birth_date(rng, age, today)
                categories = list(household_categories)
                if (size == 1 and age >= 60 and rng.random() < 0.3) or rng.random() < 0.001:
                    categories.append("tekun")
                if rng.random() < 0.004 + age * 0.0003:
                    categories.append("disabled_severe")
                if rng.random() < 0.003:
                    categories.append("youfu")
                if rng.random() < 0.002:
                    categories.append("hardship_approved")
                if age < 18 and rng.random() < 0.004:
                    categories.append("orphan")
                student = (16 <= age <= 18 and rng.random() < 0.85) or (
                    19 <= age <= 22 and rng.random() < 0.45
                )
                employee = 22 <= age <= 59 and rng.random() < 0.09
                deceased = ""
                if death_span and rng.random() < (0.03 if age >= 75 else 0.001):
                    died = date(2019, 1, 1) + timedelta(rng.randint(0, death_span))
                    deceased = died.isoformat()
                line += 1
                yield RosterRow(
                    line,
                    town.name,
                    villages[v].name,
                    household_no,
                    ids.make(birth, member.male),
                    member.surname + _given_name(rng, member.male),
                    ";".join(sorted(set(categories))),
                    "1" if student else "0",
                    "1" if employee else "0",
                    "1" if employee else "0",
                    "1" if permit else "0",
                    deceased,
                )
                persons += 1


def load_demo(session: Session, *, scale: float, seed: int, today: date) -> ImportReport:
    """Create the district and import its synthetic roster (flush only; the caller commits)."""
    ensure_district(session)
    return import_roster(
        session,
        generate_roster(scale, seed, today=today),
        source="demo",
        file_name=f"demo:scale={scale}:seed={seed}",
        today=today,
    )
