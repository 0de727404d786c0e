"""Who lives where: households and members read from a roster file in the import format.

The CLI must not read the API's database, yet binding needs the ID number and name of a live,
registered member (DESIGN.md "POST /api/v1/households/bind"). The roster file is that
knowledge, as a village agent would have it: `flask --app wsgi demo export-roster FILE` writes
the demo district in the import format (DESIGN.md "Roster import"), so a roster exported with the
same `--scale`/`--seed` as `demo load` (and the same APP_TODAY) describes exactly the persons the
API holds. `export_demo_roster` runs that command when no `--roster` is given.
"""

from __future__ import annotations

import csv
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The columns the scenario needs (the import format has more; they are ignored here).
REQUIRED = ("town", "village", "household_no", "id_number", "name", "deceased_on")
#: `make run` loads `demo load --scale ${DEMO_SCALE:-0.005}` with the default seed 42.
DEFAULT_DEMO_SCALE = "0.005"
DEFAULT_DEMO_SEED = "42"


class RosterError(RuntimeError):
    """The roster file is missing, unreadable, or does not have the import columns."""


@dataclass(frozen=True)
class Member:
    id_number: str
    name: str
    deceased_on: str  # "" when alive


@dataclass(frozen=True)
class Household:
    """One roster household; `ordinal` is its 1-based position in the file."""

    ordinal: int
    town: str
    village: str
    household_no: str
    members: tuple[Member, ...]

    @property
    def key(self) -> str:
        """`town/village/household_no`: unique in a district, stable across exports."""
        return f"{self.town}/{self.village}/{self.household_no}"

    def living(self) -> list[Member]:
        """Members who may bind (the API refuses a deceased person; the demo's deaths all lie
        before its business date, so any death date rules a member out)."""
        return [m for m in self.members if not m.deceased_on]


def read_roster(path: str | Path) -> list[Household]:
    """Households in file order (CSV, UTF-8 with or without BOM, English header)."""
    file = Path(path)
    if file.suffix.lower() == ".xlsx":
        raise RosterError("only CSV rosters are read here; export with a .csv name")
    try:
        with file.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise RosterError(f"{file}: missing columns {', '.join(missing)}")
            groups: dict[tuple[str, str, str], list[Member]] = {}
            for row in reader:
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                key = (row["town"], row["village"], row["household_no"])
                groups.setdefault(key, []).append(
                    Member(row["id_number"].upper(), row["name"], row["deceased_on"])
                )
    except OSError as exc:
        raise RosterError(f"cannot read roster {file}: {exc}") from exc
    return [
        Household(n, town, village, no, tuple(members))
        for n, ((town, village, no), members) in enumerate(groups.items(), start=1)
    ]


def find_household(households: Sequence[Household], wanted: str) -> Household:
    """`N` or `#N` (the N-th household of the roster), `VILLAGE/NO` or `TOWN/VILLAGE/NO`."""
    text = wanted.strip().lstrip("#")
    if text.isdigit():
        n = int(text)
        if not 1 <= n <= len(households):
            raise RosterError(f"the roster has {len(households)} households, not #{n}")
        return households[n - 1]
    parts = text.split("/")
    matches = [
        h
        for h in households
        if (len(parts) == 3 and (h.town, h.village, h.household_no) == tuple(parts))
        or (len(parts) == 2 and (h.village, h.household_no) == tuple(parts))
    ]
    if len(matches) != 1:
        found = "no household" if not matches else f"{len(matches)} households"
        raise RosterError(f"{found} match {wanted!r} (use N, VILLAGE/NO or TOWN/VILLAGE/NO)")
    return matches[0]


def export_demo_roster(
    flask_command: Sequence[str], *, scale: str | None = None, seed: str | None = None
) -> Path:
    """Run `flask --app wsgi demo export-roster` into a temporary CSV and return its path.

    Scale and seed default to what `make run` loaded (`$DEMO_SCALE` or 0.005, seed 42); the
    subprocess inherits APP_TODAY, on which the generator's newborns and deaths depend.
    """
    scale = scale or os.environ.get("DEMO_SCALE") or DEFAULT_DEMO_SCALE
    seed = seed or DEFAULT_DEMO_SEED
    handle, name = tempfile.mkstemp(prefix="sandbox-roster-", suffix=".csv")
    os.close(handle)
    command = [*flask_command, "demo", "export-roster", name, "--scale", scale, "--seed", seed]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RosterError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")
    return Path(name)
