"""The year's policy as immutable data, loaded from `policy_<year>.toml` and validated at load.

DOMAIN.md: every number is policy data for one insurance year ("2020年具体缴费标准按照政府
通知要求为准"), so a new year is a new file. Validation is strict and names the offending key,
because a typo in a premium would be an over-standard charge (超标准收费).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from api.policy.errors import PolicyError, UnknownYear

POLICY_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Phase:
    """A phase of the collection window (实施步骤)."""

    key: str
    label: str
    start: date
    end: date
    collection_open: bool


@dataclass(frozen=True)
class AgeSubsidy:
    """A medical subsidy by age band on the reference date (卫健's 60–69 / 70+ lists)."""

    label: str
    min_age: int
    max_age_exclusive: int | None
    subsidy_fen: int


@dataclass(frozen=True)
class PensionPolicy:
    min_age: int
    max_age_exclusive: int
    tiers: tuple[int, ...]
    subsidy_fen_by_tier: tuple[tuple[int, int], ...]
    tier100_categories: frozenset[str]
    tier100_government_pays_fen: int
    tier100_may_choose_higher: bool
    late_rule: str

    def subsidy_fen(self, tier: int) -> int:
        return dict(self.subsidy_fen_by_tier)[tier]


@dataclass(frozen=True)
class MedicalPolicy:
    premium_fen: int
    government_categories: frozenset[str]
    category_subsidy_fen: tuple[tuple[str, int], ...]
    age_subsidies: tuple[AgeSubsidy, ...]
    late_government_subsidy_fen: int
    late_benefit_delay_days: int
    late_keeps_subsidies: bool

    @property
    def late_premium_fen(self) -> int:
        """What a late payer owes: the premium plus all levels of government subsidy."""
        return self.premium_fen + self.late_government_subsidy_fen


@dataclass(frozen=True)
class Policy:
    year: int
    age_reference_date: date
    coverage_start: date
    coverage_end: date
    window_start: date
    window_end: date
    department_list_deadline: date
    phases: tuple[Phase, ...]
    categories: tuple[tuple[str, str], ...]
    pension: PensionPolicy
    medical: MedicalPolicy

    @property
    def category_keys(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.categories)

    def category_label(self, key: str) -> str:
        return dict(self.categories)[key]


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise PolicyError(f"{where}.{key}: missing")
    value = data[key]
    # bool is an int subclass: never accept it where a number is wanted.
    if kind is int and isinstance(value, bool):
        raise PolicyError(f"{where}.{key}: expected an integer, got a boolean")
    if not isinstance(value, kind):
        raise PolicyError(f"{where}.{key}: expected {kind}, got {type(value).__name__}")
    return value


def _amount(data: dict[str, Any], key: str, where: str) -> int:
    value: int = _get(data, key, int, where)
    if value < 0:
        raise PolicyError(f"{where}.{key}: amounts must be non-negative fen, got {value}")
    return value


def _categories_ref(values: list[Any], known: frozenset[str], where: str) -> frozenset[str]:
    unknown = {v for v in values if v not in known}
    if unknown:
        raise PolicyError(f"{where}: undefined categories {sorted(unknown)}")
    return frozenset(values)


def _parse(data: dict[str, Any]) -> Policy:
    year = _get(data, "year", int, "policy")
    ref = _get(data, "age_reference_date", date, "policy")
    coverage_start = _get(data, "coverage_start", date, "policy")
    coverage_end = _get(data, "coverage_end", date, "policy")
    if coverage_end < coverage_start:
        raise PolicyError("policy.coverage_end: before coverage_start")

    window = _get(data, "window", dict, "policy")
    w_start = _get(window, "start", date, "window")
    w_end = _get(window, "end", date, "window")
    deadline = _get(window, "department_list_deadline", date, "window")
    if w_end < w_start:
        raise PolicyError("window.end: before window.start")

    phases: list[Phase] = []
    for i, raw in enumerate(_get(data, "phases", list, "policy")):
        where = f"phases[{i}]"
        phase = Phase(
            key=_get(raw, "key", str, where),
            label=_get(raw, "label", str, where),
            start=_get(raw, "start", date, where),
            end=_get(raw, "end", date, where),
            collection_open=_get(raw, "collection_open", bool, where),
        )
        if phase.end < phase.start:
            raise PolicyError(f"{where}.end: before start")
        if phases and phase.start <= phases[-1].end:
            raise PolicyError(f"{where}.start: phases must be ordered and not overlap")
        phases.append(phase)

    categories_raw = _get(data, "categories", dict, "policy")
    for key, label in categories_raw.items():
        if not isinstance(label, str) or not label:
            raise PolicyError(f"categories.{key}: expected a Chinese label")
    known = frozenset(categories_raw)

    p = _get(data, "pension", dict, "policy")
    tiers_raw = _get(p, "tiers", list, "pension")
    tiers: list[int] = []
    subsidies: list[tuple[int, int]] = []
    for i, raw in enumerate(tiers_raw):
        where = f"pension.tiers[{i}]"
        tier = _amount(raw, "tier", where)
        if tiers and tier <= tiers[-1]:
            raise PolicyError(f"{where}.tier: tiers must be ascending and unique")
        tiers.append(tier)
        subsidies.append((tier, _amount(raw, "subsidy_fen", where)))
    if not tiers:
        raise PolicyError("pension.tiers: at least one tier is required")
    min_age = _get(p, "min_age", int, "pension")
    max_age = _get(p, "max_age_exclusive", int, "pension")
    if not 0 <= min_age < max_age:
        raise PolicyError("pension.max_age_exclusive: must exceed min_age")
    late_rule = _get(p, "late_rule", str, "pension")
    if late_rule != "none":
        raise PolicyError(f"pension.late_rule: unsupported rule {late_rule!r}")
    pension = PensionPolicy(
        min_age=min_age,
        max_age_exclusive=max_age,
        tiers=tuple(tiers),
        subsidy_fen_by_tier=tuple(subsidies),
        tier100_categories=_categories_ref(
            _get(p, "tier100_categories", list, "pension"), known, "pension.tier100_categories"
        ),
        tier100_government_pays_fen=_amount(p, "tier100_government_pays_fen", "pension"),
        tier100_may_choose_higher=_get(p, "tier100_may_choose_higher", bool, "pension"),
        late_rule=late_rule,
    )
    if 100 not in tiers and pension.tier100_categories:
        raise PolicyError("pension.tier100_categories: the policy has no 100 tier")

    m = _get(data, "medical", dict, "policy")
    cat_subsidy = _get(m, "category_subsidy_fen", dict, "medical")
    _categories_ref(list(cat_subsidy), known, "medical.category_subsidy_fen")
    age_subsidies: list[AgeSubsidy] = []
    for i, raw in enumerate(_get(m, "age_subsidies", list, "medical")):
        where = f"medical.age_subsidies[{i}]"
        upper = raw.get("max_age_exclusive")
        if upper is not None and (isinstance(upper, bool) or not isinstance(upper, int)):
            raise PolicyError(f"{where}.max_age_exclusive: expected an integer")
        age_subsidies.append(
            AgeSubsidy(
                label=_get(raw, "label", str, where),
                min_age=_get(raw, "min_age", int, where),
                max_age_exclusive=upper,
                subsidy_fen=_amount(raw, "subsidy_fen", where),
            )
        )
    premium = _amount(m, "premium_fen", "medical")
    medical = MedicalPolicy(
        premium_fen=premium,
        government_categories=_categories_ref(
            _get(m, "government_categories", list, "medical"),
            known,
            "medical.government_categories",
        ),
        category_subsidy_fen=tuple(
            sorted((k, _amount(cat_subsidy, k, "medical.subsidy")) for k in cat_subsidy)
        ),
        age_subsidies=tuple(age_subsidies),
        late_government_subsidy_fen=_amount(m, "late_government_subsidy_fen", "medical"),
        late_benefit_delay_days=_amount(m, "late_benefit_delay_days", "medical"),
        late_keeps_subsidies=_get(m, "late_keeps_subsidies", bool, "medical"),
    )
    for key, amount in medical.category_subsidy_fen:
        if amount > premium:
            raise PolicyError(f"medical.category_subsidy_fen.{key}: exceeds the premium")
    return Policy(
        year=year,
        age_reference_date=ref,
        coverage_start=coverage_start,
        coverage_end=coverage_end,
        window_start=w_start,
        window_end=w_end,
        department_list_deadline=deadline,
        phases=tuple(phases),
        categories=tuple(sorted(categories_raw.items())),
        pension=pension,
        medical=medical,
    )


def load_policy_file(path: Path | str) -> Policy:
    """Load and validate one policy file (raises `PolicyError` naming the bad key)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    return _parse(data)


def available_years() -> list[int]:
    return sorted(int(p.stem.removeprefix("policy_")) for p in POLICY_DIR.glob("policy_*.toml"))


@lru_cache(maxsize=16)
def load_policy(year: int) -> Policy:
    """The validated policy of `year`, cached for the process (files change only by deploy)."""
    path = POLICY_DIR / f"policy_{year}.toml"
    if not path.exists():
        raise UnknownYear()
    policy = load_policy_file(path)
    if policy.year != year:
        raise PolicyError(f"{path}: declares year {policy.year}")
    return policy
