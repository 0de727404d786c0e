"""The year's policy as immutable data, loaded from `policy_<year>.toml` and validated at load.

DOMAIN.md: every number is policy data for one insurance year ("2020年具体缴费标准按照政府
通知要求为准"), so a new year is a new file. Validation is strict and names the offending key,
because a typo in a premium would be an over-standard charge (超标准收费), and a misspelt
optional key (say `max_age_exlusive`) silently ignored would change who gets a subsidy: so every
table is checked for unknown keys too. The parsing itself lives in `api.policy.loader`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from pathlib import Path
from typing import NamedTuple

from api.policy.errors import PolicyError, UnknownYear

POLICY_DIR = Path(__file__).resolve().parent


class Category(NamedTuple):
    """A person category 人员类别 (DOMAIN.md's table): stable key and its Chinese label.

    A NamedTuple rather than a dataclass so `for key, label in policy.categories` keeps working
    for the roster import, while staying immutable and hashable.
    """

    key: str
    label: str


class PensionTier(NamedTuple):
    """A pension tier 缴费档次 (yuan) and the government subsidy 政府补贴 credited for it (fen)."""

    tier: int
    subsidy_fen: int


@dataclass(frozen=True)
class Phase:
    """A phase of the collection window (实施步骤); `collection_open`: may residents pay online."""

    key: str
    label: str
    start: date
    end: date
    collection_open: bool


@dataclass(frozen=True)
class AgeSubsidy:
    """A medical subsidy by age band on the reference date (卫健's 60–69 / 70+ lists).

    `max_age_exclusive` None means open-ended (70+).
    """

    label: str
    min_age: int
    max_age_exclusive: int | None
    subsidy_fen: int

    def covers(self, age: int) -> bool:
        return self.min_age <= age and (
            self.max_age_exclusive is None or age < self.max_age_exclusive
        )


@dataclass(frozen=True)
class PensionPolicy:
    """Resident pension 居民养老保险: who may join and the tier table."""

    min_age: int
    max_age_exclusive: int
    tier_table: tuple[PensionTier, ...]
    tier100_categories: frozenset[str]
    tier100_government_pays_fen: int
    tier100_may_choose_higher: bool
    late_rule: str

    @property
    def tiers(self) -> tuple[int, ...]:
        return tuple(t.tier for t in self.tier_table)

    def subsidy_fen(self, tier: int) -> int:
        """The subsidy of `tier`; KeyError for a tier the policy does not have."""
        for row in self.tier_table:
            if row.tier == tier:
                return row.subsidy_fen
        raise KeyError(tier)


# How a newborn's cover start is found (policy data `medical.newborn.cover_*`).
COVER_STARTS = frozenset({"date_of_birth", "first_day_of_next_month"})


@dataclass(frozen=True)
class NewbornPolicy:
    """Newborns 新生儿 (DOMAIN.md "Newborns"): who counts, the enrolment days, the cover starts.

    `cover_within` / `cover_after` are one of `COVER_STARTS`: the cover start of a newborn
    enrolled within `enrol_within_days` of birth, and of one enrolled later.
    """

    born_on_or_after: date
    enrol_within_days: int
    cover_within: str
    cover_after: str


@dataclass(frozen=True)
class MedicalPolicy:
    """Resident medical 居民医疗保险: premium, government-paid groups, subsidies, late rule."""

    premium_fen: int
    government_categories: frozenset[str]
    category_subsidy_fen: tuple[tuple[str, int], ...]
    age_subsidies: tuple[AgeSubsidy, ...]
    late_government_subsidy_fen: int
    late_benefit_delay_days: int
    late_keeps_subsidies: bool
    newborn: NewbornPolicy

    @property
    def late_premium_fen(self) -> int:
        """What a late payer owes: the premium plus all levels of government subsidy (逾期)."""
        return self.premium_fen + self.late_government_subsidy_fen


@dataclass(frozen=True)
class Policy:
    """One insurance year's policy. Immutable and hashable, so it can key caches."""

    year: int
    age_reference_date: date
    coverage_start: date
    coverage_end: date
    window_start: date
    window_end: date
    department_list_deadline: date
    phases: tuple[Phase, ...]
    categories: tuple[Category, ...]
    pension: PensionPolicy
    medical: MedicalPolicy

    @cached_property
    def category_keys(self) -> frozenset[str]:
        """Computed once per policy object: every quote of every request asks for it."""
        return frozenset(c.key for c in self.categories)

    def category_label(self, key: str) -> str:
        """The Chinese label of `key`; KeyError for a key the policy does not define."""
        for c in self.categories:
            if c.key == key:
                return c.label
        raise KeyError(key)


def load_policy_file(path: Path | str) -> Policy:
    """Load and validate one policy file (raises `PolicyError` naming the bad key)."""
    from api.policy.loader import parse_policy  # the loader imports these types: no cycle

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError) as exc:  # TOMLDecodeError is a ValueError
        raise PolicyError(f"{path}: {exc}") from exc
    try:
        return parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"{Path(path).name}: {exc}") from exc


def available_years() -> list[int]:
    """The years with a policy file shipped beside this module."""
    years = []
    for p in POLICY_DIR.glob("policy_*.toml"):
        suffix = p.stem.removeprefix("policy_")
        if suffix.isascii() and suffix.isdigit():
            years.append(int(suffix))
    return sorted(years)


@lru_cache(maxsize=16)
def load_policy(year: int) -> Policy:
    """The validated policy of `year`, cached for the process (files change only by deploy)."""
    path = POLICY_DIR / f"policy_{year}.toml"
    if not path.exists():
        raise UnknownYear()
    policy = load_policy_file(path)
    if policy.year != year:
        raise PolicyError(f"{path.name}: policy.year: declares {policy.year}, expected {year}")
    return policy
