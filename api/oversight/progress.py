"""Progress against the targets 征缴进度 (附件2): figures, shares, forecast, per unit and day.

One grouped query (`api.payments.progress.progress_rows`) returns persons and fen per unit,
Beijing day, insurance, source and new-enrollee flag; everything else here is folding those
rows in Python (a few thousand at the district's scale): totals, the split by source and by
phase, the daily series, the shares of target and the forecast. Definitions and formulas:
docs/oversight.md.

Integers only: persons, fen, and ratios in basis points (1/10,000; 6,543 = 65.43 %).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from api.auth.guards import staff_sees_district
from api.auth.models import StaffAccount
from api.clock import BEIJING
from api.errors import Forbidden, NotFound
from api.households.service import Unit, district_units
from api.oversight.errors import OutOfScope
from api.payments.models.contributions import SOURCES
from api.payments.progress import ProgressRow, progress_rows
from api.policy.errors import UnknownYear
from api.policy.model import Phase, Policy, load_policy
from api.policy.targets import ZERO, Target, load_targets

Level = Literal["district", "town", "village"]
LEVELS = ("district", "town", "village")
OUTSIDE_PHASES = "outside"  # a Beijing day no phase of the policy covers


@dataclass
class Figures:
    """What was paid: persons and the premium booked (fen)."""

    pension_persons: int = 0
    pension_new_persons: int = 0
    pension_amount_fen: int = 0
    medical_persons: int = 0
    medical_amount_fen: int = 0

    def add(self, row: ProgressRow) -> None:
        if row.insurance == "pension":
            self.pension_persons += row.persons
            self.pension_amount_fen += row.amount_fen
            self.pension_new_persons += row.new_persons
        elif row.insurance == "medical":
            self.medical_persons += row.persons
            self.medical_amount_fen += row.amount_fen

    def merge(self, other: Figures) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def view(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class Tally:
    """One unit's figures: in total, by source, by phase and by day."""

    total: Figures = field(default_factory=Figures)
    by_source: dict[str, Figures] = field(default_factory=dict)
    by_phase: dict[str, Figures] = field(default_factory=dict)
    by_day: dict[date, Figures] = field(default_factory=dict)

    def add(self, row: ProgressRow, phase: str) -> None:
        self.total.add(row)
        self.by_source.setdefault(row.source, Figures()).add(row)
        self.by_phase.setdefault(phase, Figures()).add(row)
        self.by_day.setdefault(row.day, Figures()).add(row)

    def merge(self, other: Tally) -> None:
        self.total.merge(other.total)
        for mine, theirs in (
            (self.by_source, other.by_source),
            (self.by_phase, other.by_phase),
            (self.by_day, other.by_day),
        ):
            for key, figures in theirs.items():
                mine.setdefault(key, Figures()).merge(figures)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Forecast:
    """The forecast at the current rate for the window's end (docs/oversight.md):

        forecast = paid × total_days ÷ elapsed_days   (integer division)

    where the days are counted from the first day of the first phase open to collection
    (`collection_start`) — elapsed through the as-of day, total through the window's end, both
    inclusive. Before collection starts and from the window's end on, the forecast is what
    has been paid.
    """

    collection_start: date
    window_end: date
    elapsed_days: int
    total_days: int

    def of(self, paid: int) -> int:
        if self.elapsed_days <= 0 or self.elapsed_days >= self.total_days:
            return paid
        return paid * self.total_days // self.elapsed_days


def forecast_for(policy: Policy, as_of: date) -> Forecast:
    start = next(
        (p.start for p in policy.phases if p.collection_open and p.start >= policy.window_start),
        policy.window_start,
    )
    total = (policy.window_end - start).days + 1
    elapsed = min((as_of - start).days + 1, total)
    return Forecast(start, policy.window_end, max(elapsed, 0), total)


def share_bp(value: int, target: int | None) -> int | None:
    """value / target in basis points, rounded down; None without a target."""
    if not target:
        return None
    return value * 10_000 // target


def phase_of(phases: Iterable[Phase], day: date) -> str:
    for phase in phases:
        if phase.start <= day <= phase.end:
            return phase.key
    return OUTSIDE_PHASES


def _end_of_beijing_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), BEIJING)


@dataclass(frozen=True)
class Scope:
    """What the caller asked for and may see: the level, the towns and villages in it."""

    level: Level
    towns: list[Unit]
    villages: list[Unit]
    whole_district: bool


def resolve_scope(
    session: Session, *, staff: StaffAccount, level: Level, town_code: str | None
) -> Scope:
    """The units of the request. A town office sees its own town and its villages only: the
    district level, or another town's code, is refused (403 `out_of_scope`)."""
    towns, villages = district_units(session)
    district_wide = staff_sees_district(staff)
    if not district_wide:
        if staff.role != "town" or staff.town_id is None:
            raise Forbidden()
        own = next((t for t in towns if t.id == staff.town_id), None)
        if own is None:
            raise Forbidden()
        if level == "district" or (town_code is not None and town_code != own.code):
            raise OutOfScope()
        town_code = own.code
    if town_code is not None:
        chosen = [t for t in towns if t.code == town_code]
        if not chosen:
            raise NotFound("没有这个镇(街)", code="town_not_found")
        if level == "district":
            level = "town"
        ids = {t.id for t in chosen}
        return Scope(level, chosen, [v for v in villages if v.town_id in ids], False)
    return Scope(level, towns, villages, True)


def _target_of(targets_by_code: dict[str, Target], towns: Iterable[Unit]) -> Target:
    total = ZERO
    for town in towns:
        total = total + targets_by_code.get(town.code, ZERO)
    return total


def _unit_view(
    *,
    level: str,
    code: str,
    name: str,
    town: Unit | None,
    tally: Tally,
    target: Target | None,
    forecast: Forecast,
    phases: tuple[Phase, ...],
) -> dict[str, Any]:
    f = tally.total
    zero = Figures()
    pension_forecast = forecast.of(f.pension_persons)
    medical_forecast = forecast.of(f.medical_persons)
    amount_forecast = forecast.of(f.medical_amount_fen)
    return {
        "level": level,
        "code": code,
        "name": name,
        "town_code": town.code if town else None,
        "town_name": town.name if town else None,
        "pension": {
            "persons": f.pension_persons,
            "new_persons": f.pension_new_persons,
            "amount_fen": f.pension_amount_fen,
            "target_persons": target.pension_persons if target else None,
            "target_new_persons": target.pension_new_persons if target else None,
            "share_bp": share_bp(f.pension_persons, target.pension_persons if target else None),
            "new_share_bp": share_bp(
                f.pension_new_persons, target.pension_new_persons if target else None
            ),
            "forecast_persons": pension_forecast,
            "forecast_share_bp": share_bp(
                pension_forecast, target.pension_persons if target else None
            ),
        },
        "medical": {
            "persons": f.medical_persons,
            "amount_fen": f.medical_amount_fen,
            "target_persons": target.medical_persons if target else None,
            "target_amount_fen": target.medical_amount_fen if target else None,
            "share_bp": share_bp(f.medical_persons, target.medical_persons if target else None),
            "amount_share_bp": share_bp(
                f.medical_amount_fen, target.medical_amount_fen if target else None
            ),
            "forecast_persons": medical_forecast,
            "forecast_amount_fen": amount_forecast,
            "forecast_share_bp": share_bp(
                medical_forecast, target.medical_persons if target else None
            ),
        },
        "by_source": {s: tally.by_source.get(s, zero).view() for s in SOURCES},
        "by_phase": {
            key: tally.by_phase.get(key, zero).view()
            for key in [p.key for p in phases] + [OUTSIDE_PHASES]
        },
        "days": [
            {"date": day.isoformat(), **tally.by_day[day].view()} for day in sorted(tally.by_day)
        ],
    }


def progress_report(
    session: Session,
    *,
    staff: StaffAccount,
    level: Level,
    as_of: date,
    year: int,
    town_code: str | None = None,
) -> dict[str, Any]:
    """The progress report as of the end of the Beijing day `as_of` (inclusive)."""
    try:
        policy = load_policy(year)
        targets = load_targets(year)
    except UnknownYear as exc:
        raise NotFound("该年度征缴政策或任务目标尚未发布", code="unknown_year") from exc
    scope = resolve_scope(session, staff=staff, level=level, town_code=town_code)
    by: Literal["town", "village"] = "village" if scope.level == "village" else "town"
    village_ids = None if scope.whole_district else [v.id for v in scope.villages]
    rows = progress_rows(
        session, year=year, before=_end_of_beijing_day(as_of), by=by, village_ids=village_ids
    )
    tallies: dict[int, Tally] = {}
    phase_cache: dict[date, str] = {}
    for row in rows:
        phase = phase_cache.get(row.day)
        if phase is None:
            phase = phase_cache[row.day] = phase_of(policy.phases, row.day)
        tallies.setdefault(row.unit_id, Tally()).add(row, phase)

    targets_by_code = {t.code: t.target for t in targets.towns}
    towns_by_id = {t.id: t for t in scope.towns}
    forecast = forecast_for(policy, as_of)
    common: dict[str, Any] = {"forecast": forecast, "phases": policy.phases}
    total = Tally()
    for tally in tallies.values():
        total.merge(tally)

    units: list[dict[str, Any]] = []
    if scope.level == "town":
        for town in scope.towns:
            units.append(
                _unit_view(
                    level="town", code=town.code, name=town.name, town=None,
                    tally=tallies.get(town.id, Tally()),
                    target=targets_by_code.get(town.code, ZERO), **common,
                )
            )  # fmt: skip
    elif scope.level == "village":
        for village in scope.villages:
            units.append(
                _unit_view(
                    level="village", code=village.code, name=village.name,
                    town=towns_by_id.get(village.town_id or 0),
                    tally=tallies.get(village.id, Tally()), target=None, **common,
                )
            )  # fmt: skip
    if scope.whole_district:
        total_view = _unit_view(
            level="district", code="district", name="山亭区", town=None, tally=total,
            target=targets.total, **common,
        )  # fmt: skip
    else:
        town = scope.towns[0]
        total_view = _unit_view(
            level="town", code=town.code, name=town.name, town=None, tally=total,
            target=_target_of(targets_by_code, scope.towns), **common,
        )  # fmt: skip
    if scope.level == "district":
        units = [total_view]
    return {
        "year": year,
        "as_of": as_of.isoformat(),
        "level": scope.level,
        "sources": list(SOURCES),
        "phases": [
            {"key": p.key, "label": p.label, "start": p.start.isoformat(), "end": p.end.isoformat()}
            for p in policy.phases
        ],
        "forecast": {
            "collection_start": forecast.collection_start.isoformat(),
            "window_end": forecast.window_end.isoformat(),
            "elapsed_days": forecast.elapsed_days,
            "total_days": forecast.total_days,
            "formula": "forecast = paid × total_days ÷ elapsed_days (integer division)",
        },
        "units": units,
        "total": total_view,
    }
