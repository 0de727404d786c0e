"""The year's collection targets 任务分配表 (附件2), loaded from `targets_<year>.toml`.

Policy data beside the policy file, validated the same way (`api.policy.loader._Table`: every
error names its key, unknown keys are refused, integers only, never negative): each town once,
by code and by name, and the rows must add up to the file's `[totals]`, the table's printed
合计 — a row copied wrong stops the load instead of skewing every share of target.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from api.policy.errors import PolicyError, UnknownYear
from api.policy.loader import ROOT, _Table
from api.policy.model import POLICY_DIR

FIGURES = ("pension_persons", "pension_new_persons", "medical_persons", "medical_amount_fen")


@dataclass(frozen=True)
class Target:
    """One row of the table (or its total): persons and fen, integers."""

    pension_persons: int
    pension_new_persons: int
    medical_persons: int
    medical_amount_fen: int

    def __add__(self, other: Target) -> Target:
        return Target(*(getattr(self, f) + getattr(other, f) for f in FIGURES))


ZERO = Target(0, 0, 0, 0)


@dataclass(frozen=True)
class TownTarget:
    code: str
    name: str
    target: Target


@dataclass(frozen=True)
class Targets:
    year: int
    towns: tuple[TownTarget, ...]
    total: Target

    def of_town(self, code: str) -> Target | None:
        for town in self.towns:
            if town.code == code:
                return town.target
        return None


def _figures(t: _Table) -> Target:
    return Target(*(t.integer(f, minimum=0) for f in FIGURES))


def parse_targets(data: dict[str, Any]) -> Targets:
    """Validate the TOML data of one targets file; `PolicyError` names the first bad key."""
    root = _Table(data, ROOT)
    year = root.integer("year", minimum=1)
    totals = root.table("totals")
    declared = _figures(totals)
    totals.done()
    towns: list[TownTarget] = []
    for t in root.tables("towns"):
        town = TownTarget(code=t.text("code"), name=t.text("name"), target=_figures(t))
        t.done()
        if any(x.code == town.code for x in towns):
            raise PolicyError(f"{t.name('code')}: duplicate town {town.code!r}")
        if any(x.name == town.name for x in towns):
            raise PolicyError(f"{t.name('name')}: duplicate town {town.name!r}")
        towns.append(town)
    root.done()
    if not towns:
        raise PolicyError("towns: at least one town is required")
    summed = ZERO
    for town in towns:
        summed = summed + town.target
    for figure in FIGURES:
        if getattr(summed, figure) != getattr(declared, figure):
            raise PolicyError(
                f"totals.{figure}: the towns add up to {getattr(summed, figure)}, "
                f"the table says {getattr(declared, figure)}"
            )
    return Targets(year=year, towns=tuple(towns), total=declared)


def load_targets_file(path: Path | str) -> Targets:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    try:
        return parse_targets(data)
    except PolicyError as exc:
        raise PolicyError(f"{Path(path).name}: {exc}") from exc


@lru_cache(maxsize=16)
def load_targets(year: int) -> Targets:
    """The validated targets of `year`, cached for the process (files change only by deploy)."""
    path = POLICY_DIR / f"targets_{year}.toml"
    if not path.exists():
        raise UnknownYear()
    targets = load_targets_file(path)
    if targets.year != year:
        raise PolicyError(f"{path.name}: policy.year: declares {targets.year}, expected {year}")
    return targets
