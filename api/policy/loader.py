"""Parsing and validation of a policy file's TOML data into `Policy`.

Why so strict (DOMAIN.md "Prohibitions"): any amount that is not exactly the policy's amount is
an over-standard charge (超标准收费), so a bad file must never serve. Every error names the key
(`medical.premium_fen`, `pension.tiers[1].tier`, …) so whoever edits next year's file can fix it
without reading this code. Unknown keys are refused: a misspelt optional key would otherwise be
silently ignored.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from itertools import pairwise
from typing import Any

from api.policy.errors import PolicyError
from api.policy.model import (
    COVER_STARTS,
    AgeSubsidy,
    Category,
    MedicalPolicy,
    NewbornPolicy,
    PensionPolicy,
    PensionTier,
    Phase,
    Policy,
)

_KEY = re.compile(r"[a-z][a-z0-9_]*")
# The pension late rules this code implements. 2020: "none" — the plan states no late rule for
# pension, so paying after the window changes neither the amount nor the cover.
PENSION_LATE_RULES = frozenset({"none"})
# The 100 tier (yuan) that district finance pays for the hardship groups (代缴最低标准).
TIER_100 = 100
# The name of the file's top level in error messages (`policy.year`).
ROOT = "policy"


class _Table:
    """One TOML table being read: typed getters that name the key, and an unknown-key check."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise PolicyError(f"{where}: expected a table, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.where}.{key}"

    def raw(self, key: str) -> Any:
        self.used.add(key)
        if key not in self.data:
            raise PolicyError(f"{self.name(key)}: missing")
        return self.data[key]

    def integer(self, key: str, *, minimum: int | None = None) -> int:
        value = self.raw(key)
        # bool is an int subclass: `true` is never a number here.
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{self.name(key)}: expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise PolicyError(f"{self.name(key)}: must be at least {minimum}, got {value}")
        return value

    def amount(self, key: str) -> int:
        """A money amount: integer fen, never negative, never a float."""
        return self.integer(key, minimum=0)

    def optional_integer(self, key: str, *, minimum: int | None = None) -> int | None:
        if key not in self.data:
            self.used.add(key)
            return None
        return self.integer(key, minimum=minimum)

    def day(self, key: str) -> date:
        value = self.raw(key)
        # A TOML datetime is a `date` subclass; it would break comparisons with plain dates.
        if isinstance(value, datetime) or not isinstance(value, date):
            raise PolicyError(f"{self.name(key)}: expected a date (YYYY-MM-DD), got {value!r}")
        return value

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(f"{self.name(key)}: expected a non-empty string, got {value!r}")
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise PolicyError(f"{self.name(key)}: expected true or false, got {value!r}")
        return value

    def child(self, key: str) -> str:
        """A sub-table's name: top-level tables are named as in the file (`window.end`)."""
        return key if self.where == ROOT else self.name(key)

    def table(self, key: str) -> _Table:
        return _Table(self.raw(key), self.child(key))

    def tables(self, key: str) -> list[_Table]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise PolicyError(f"{self.child(key)}: expected an array of tables")
        return [_Table(item, f"{self.child(key)}[{i}]") for i, item in enumerate(value)]

    def categories(self, key: str, known: frozenset[str]) -> frozenset[str]:
        """A list of category keys, each defined in [categories], none twice."""
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PolicyError(f"{self.name(key)}: expected a list of category keys")
        if len(set(value)) != len(value):
            raise PolicyError(f"{self.name(key)}: a category is listed twice")
        unknown = sorted(set(value) - known)
        if unknown:
            raise PolicyError(f"{self.name(key)}: undefined categories {unknown}")
        return frozenset(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise PolicyError(f"{self.name(unknown[0])}: unknown key (misspelt?)")


def _phases(root: _Table) -> tuple[Phase, ...]:
    phases: list[Phase] = []
    for t in root.tables("phases"):
        phase = Phase(
            key=t.text("key"),
            label=t.text("label"),
            start=t.day("start"),
            end=t.day("end"),
            collection_open=t.flag("collection_open"),
        )
        t.done()
        if phase.end < phase.start:
            raise PolicyError(f"{t.name('end')}: before start")
        if phases and phase.start <= phases[-1].end:
            raise PolicyError(f"{t.name('start')}: phases must be in date order and not overlap")
        if any(p.key == phase.key for p in phases):
            raise PolicyError(f"{t.name('key')}: duplicate phase {phase.key!r}")
        phases.append(phase)
    if not phases:
        raise PolicyError("phases: at least one phase is required")
    return tuple(phases)


def _categories(root: _Table) -> tuple[Category, ...]:
    t = root.table("categories")
    result = []
    for key in t.data:
        if not _KEY.fullmatch(key):
            raise PolicyError(f"{t.name(key)}: category keys are lower_snake_case")
        result.append(Category(key, t.text(key)))
    t.done()
    if not result:
        raise PolicyError("categories: at least one category is required")
    return tuple(sorted(result))


def _pension(root: _Table, known: frozenset[str]) -> PensionPolicy:
    t = root.table("pension")
    table: list[PensionTier] = []
    for row in t.tables("tiers"):
        tier = row.integer("tier", minimum=1)
        if table and tier <= table[-1].tier:
            raise PolicyError(f"{row.name('tier')}: tiers must be ascending and unique")
        table.append(PensionTier(tier, row.amount("subsidy_fen")))
        row.done()
    if not table:
        raise PolicyError("pension.tiers: at least one tier is required")
    min_age = t.integer("min_age", minimum=0)
    max_age = t.integer("max_age_exclusive", minimum=min_age + 1)
    late_rule = t.text("late_rule")
    if late_rule not in PENSION_LATE_RULES:
        raise PolicyError(f"pension.late_rule: unsupported rule {late_rule!r}")
    pension = PensionPolicy(
        min_age=min_age,
        max_age_exclusive=max_age,
        tier_table=tuple(table),
        tier100_categories=t.categories("tier100_categories", known),
        tier100_government_pays_fen=t.amount("tier100_government_pays_fen"),
        tier100_may_choose_higher=t.flag("tier100_may_choose_higher"),
        late_rule=late_rule,
    )
    t.done()
    if pension.tier100_categories and TIER_100 not in pension.tiers:
        raise PolicyError("pension.tier100_categories: the policy has no 100 tier")
    if pension.tier100_government_pays_fen > TIER_100 * 100:
        # District finance pays the 100-yuan minimum, never more: more would make owed negative.
        raise PolicyError("pension.tier100_government_pays_fen: exceeds the 100 tier (10000 fen)")
    return pension


def _age_subsidies(t: _Table, premium_fen: int) -> tuple[AgeSubsidy, ...]:
    bands: list[AgeSubsidy] = []
    for row in t.tables("age_subsidies"):
        min_age = row.integer("min_age", minimum=0)
        band = AgeSubsidy(
            label=row.text("label"),
            min_age=min_age,
            max_age_exclusive=row.optional_integer("max_age_exclusive", minimum=min_age + 1),
            subsidy_fen=row.amount("subsidy_fen"),
        )
        row.done()
        if band.subsidy_fen > premium_fen:
            raise PolicyError(f"{row.name('subsidy_fen')}: exceeds the premium")
        if any(b.label == band.label for b in bands):
            raise PolicyError(f"{row.name('label')}: duplicate band {band.label!r}")
        bands.append(band)
    ordered = sorted(bands, key=lambda b: b.min_age)
    for lower, upper in pairwise(ordered):
        if lower.max_age_exclusive is None or lower.max_age_exclusive > upper.min_age:
            raise PolicyError(
                f"medical.age_subsidies: bands {lower.label!r} and {upper.label!r} overlap"
            )
    return tuple(bands)


def _newborn(t: _Table) -> NewbornPolicy:
    """[medical.newborn]: the cover starts must be ones the rules implement."""
    nb = t.table("newborn")
    newborn = NewbornPolicy(
        born_on_or_after=nb.day("born_on_or_after"),
        enrol_within_days=nb.integer("enrol_within_days", minimum=0),
        cover_within=nb.text("cover_within"),
        cover_after=nb.text("cover_after"),
    )
    for key in ("cover_within", "cover_after"):
        if getattr(newborn, key) not in COVER_STARTS:
            raise PolicyError(f"{nb.name(key)}: expected one of {sorted(COVER_STARTS)}")
    nb.done()
    return newborn


def _medical(root: _Table, known: frozenset[str]) -> MedicalPolicy:
    t = root.table("medical")
    premium = t.amount("premium_fen")
    subsidies = t.table("category_subsidy_fen")
    per_category = []
    for key in sorted(subsidies.data):
        if key not in known:
            raise PolicyError(f"{subsidies.name(key)}: undefined category")
        amount = subsidies.amount(key)
        if amount > premium:
            raise PolicyError(f"{subsidies.name(key)}: exceeds the premium")
        per_category.append((key, amount))
    subsidies.done()
    medical = MedicalPolicy(
        premium_fen=premium,
        government_categories=t.categories("government_categories", known),
        category_subsidy_fen=tuple(per_category),
        age_subsidies=_age_subsidies(t, premium),
        late_government_subsidy_fen=t.amount("late_government_subsidy_fen"),
        late_benefit_delay_days=t.integer("late_benefit_delay_days", minimum=0),
        late_keeps_subsidies=t.flag("late_keeps_subsidies"),
        newborn=_newborn(t),
    )
    t.done()
    return medical


def parse_policy(data: dict[str, Any]) -> Policy:
    """Validate the TOML data of one policy file; `PolicyError` names the first bad key."""
    root = _Table(data, ROOT)
    year = root.integer("year", minimum=1)
    reference = root.day("age_reference_date")
    coverage_start = root.day("coverage_start")
    coverage_end = root.day("coverage_end")
    if coverage_end < coverage_start:
        raise PolicyError("policy.coverage_end: before coverage_start")

    window = root.table("window")
    window_start = window.day("start")
    window_end = window.day("end")
    deadline = window.day("department_list_deadline")
    window.done()
    if window_end < window_start:
        raise PolicyError("window.end: before window.start")
    if not window_start <= deadline <= window_end:
        raise PolicyError("window.department_list_deadline: outside the window")
    if window_end >= coverage_end:
        raise PolicyError("window.end: the window must close before the insurance year ends")

    categories = _categories(root)
    known = frozenset(c.key for c in categories)
    policy = Policy(
        year=year,
        age_reference_date=reference,
        coverage_start=coverage_start,
        coverage_end=coverage_end,
        window_start=window_start,
        window_end=window_end,
        department_list_deadline=deadline,
        phases=_phases(root),
        categories=categories,
        pension=_pension(root, known),
        medical=_medical(root, known),
    )
    root.done()
    if policy.medical.newborn.born_on_or_after > coverage_end:
        raise PolicyError("medical.newborn.born_on_or_after: after coverage_end")
    return policy
