"""Quotes 保费试算: the policy's rules turned into the API's member structure.

Shared by the stateless `POST /api/v1/premiums/quote` and the household premiums endpoint, so
both answer with the same shape: per member `age`, `medical {due, owed_fen,
government_pays_fen, subsidy_fen, late, rule, rule_label}`, `pension {eligible, tier, owed_fen,
government_pays_fen, subsidy_fen, rule, rule_label}`, and household `totals`. The amounts are
the policy's (`api.policy.rules`), never computed here.

Newborns (DOMAIN.md "Newborns"): `medical.benefit_start` is the cover start if paid on the
quoted day, and `medical.birth_year` names the birth year's premium a newborn also owes when
its 90 days cross into the year: an amount of that year's policy when its file exists
(`payable_online`), otherwise `payable_online: false` and no amount — owed at the counter,
never an amount invented here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from typing import Any

from api.errors import InvalidInput
from api.households.models import Person
from api.policy import Policy, load_policy, rules
from api.policy.errors import NotEligible, PolicyError, RuleError, TierNotAllowed, UnknownTier
from api.policy.errors import UnknownYear as _UnknownYear
from api.policy.idnumber import birth_date_of, mask_id_number, mask_name
from api.policy.rules import MemberQuote, PersonFacts

log = logging.getLogger(__name__)


class PolicyUnavailable(Exception):
    """No (valid) policy for the requested year."""


def policy_for_year(year: int) -> Policy:
    """The year's policy (cached by `load_policy`), or `PolicyUnavailable`."""
    try:
        return load_policy(year)
    except _UnknownYear as exc:
        raise PolicyUnavailable(year) from exc
    except PolicyError as exc:  # a broken file is our fault: logged, but still not a 500 loop
        log.error("policy of %s cannot be loaded: %s", year, exc)
        raise PolicyUnavailable(year) from exc


def year_message(year: int) -> str:
    return f"{year} 年度缴费政策尚未发布"


@dataclass(frozen=True)
class HouseholdQuote:
    members: list[dict[str, Any]]
    totals: dict[str, int]
    late: bool
    collection_open: bool


def facts_of(person: Person, year: int) -> PersonFacts:
    """The rules' view of a registered person, with the pension tier chosen for `year`."""
    tier = next(
        (e.pension_tier for e in person.enrollments if e.insurance == "pension" and e.year == year),
        None,
    )
    return PersonFacts(
        birth_date=person.birth_date,
        categories=frozenset(c.category for c in person.categories),
        student=person.student,
        employee_pension=person.employee_pension,
        employee_medical=person.employee_medical,
        deceased_on=person.deceased_on,
        residence_permit=person.residence_permit,
        pension_tier=tier,
    )


@lru_cache(maxsize=512)
def _rule_label(rule: str) -> str:
    """`rules.rule_label` kept per rule key: a few dozen keys, asked twice per member per
    request; the label is a pure function of the key (no policy passed here)."""
    return rules.rule_label(rule)


@dataclass(frozen=True)
class BirthYearDue:
    """The birth year's medical premium a newborn also owes (DOMAIN.md "Newborns")."""

    year: int
    owed_fen: int | None  # None: no policy file for that year, owed at the counter
    benefit_start: date
    rule: str | None


def birth_year_due(facts: PersonFacts, quote: MemberQuote, *, on: date) -> BirthYearDue | None:
    """The birth year's premium owed beside `quote` (None when the rules name none).

    Priced by the birth year's own policy file through the same rules (a newborn of that year,
    enrolled on `on`); with no file for that year nothing is priced: the counter handles it.
    """
    year = quote.medical.birth_year
    if year is None:
        return None
    try:
        policy = load_policy(year)
    except (_UnknownYear, PolicyError):
        return BirthYearDue(year, None, facts.birth_date, None)
    known = replace(facts, categories=facts.categories & policy.category_keys, pension_tier=None)
    medical = rules.quote_medical(policy, known, on)
    if not medical.due:
        return None
    start = medical.benefit_start or facts.birth_date
    return BirthYearDue(year, medical.owed_fen, start, medical.rule)


def birth_year_body(due: BirthYearDue | None) -> dict[str, Any] | None:
    if due is None:
        return None
    if due.owed_fen is None:
        message = f"新生儿出生当年（{due.year}年）的居民医疗保险费请到医保经办窗口缴纳"
    else:
        message = f"新生儿出生当年（{due.year}年）的居民医疗保险费需一并缴纳"
    return {
        "year": due.year,
        "payable_online": due.owed_fen is not None,
        "owed_fen": due.owed_fen,
        "benefit_start": due.benefit_start.isoformat(),
        "rule": due.rule,
        "message": message,
    }


def member_body(quote: MemberQuote, birth_year: BirthYearDue | None = None) -> dict[str, Any]:
    # Explicit dicts, not dataclasses.asdict (which deep-copies: measurable on the hot path).
    medical, pension = quote.medical, quote.pension
    start = medical.benefit_start
    return {
        "age": quote.age,
        "medical": {
            "due": medical.due,
            "owed_fen": medical.owed_fen,
            "government_pays_fen": medical.government_pays_fen,
            "subsidy_fen": medical.subsidy_fen,
            "late": medical.late,
            "rule": medical.rule,
            "rule_label": _rule_label(medical.rule),
            "benefit_start": start.isoformat() if start is not None else None,
            "birth_year": birth_year_body(birth_year),
        },
        "pension": {
            "eligible": pension.eligible,
            "tier": pension.tier,
            "owed_fen": pension.owed_fen,
            "government_pays_fen": pension.government_pays_fen,
            "subsidy_fen": pension.subsidy_fen,
            "rule": pension.rule,
            "rule_label": _rule_label(pension.rule),
        },
    }


def totals_body(quotes: Sequence[MemberQuote]) -> dict[str, int]:
    totals = rules.totals_of(quotes)
    return {
        "owed_fen": totals.owed_fen,
        "medical_owed_fen": totals.medical_owed_fen,
        "pension_owed_fen": totals.pension_owed_fen,
        "government_pays_fen": totals.government_pays_fen,
        "subsidy_fen": totals.subsidy_fen,
    }


def _stored_member_quote(policy: Policy, facts: PersonFacts, on: date) -> MemberQuote:
    """Quote a registered person; a stored choice the policy no longer allows is not a 500.

    Categories unknown to this year's policy (a roster of another year) are ignored, and a
    stored tier the person may no longer take (e.g. left 低保, tier 100) reads as "no tier
    chosen", so the resident is asked to choose again.
    """
    known = facts.categories & policy.category_keys
    if known != facts.categories:
        log.warning("person categories unknown to policy %s ignored", policy.year)
        facts = replace(facts, categories=known)
    try:
        return rules.quote_member(policy, facts, on)
    except (TierNotAllowed, UnknownTier, NotEligible):
        return rules.quote_member(policy, replace(facts, pension_tier=None), on)


def quote_people(policy: Policy, people: Sequence[PersonFacts], *, on: date) -> HouseholdQuote:
    quotes = [_stored_member_quote(policy, facts, on) for facts in people]
    return HouseholdQuote(
        members=[
            member_body(q, birth_year_due(facts, q, on=on))
            for facts, q in zip(people, quotes, strict=True)
        ],
        totals=totals_body(quotes),
        late=rules.is_late(policy, on),
        collection_open=rules.collection_open(policy, on),
    )


def tier_error(policy: Policy, facts: PersonFacts, tier: int, *, on: date) -> str | None:
    """None if the person may choose `tier` on `on`, else the policy's Chinese reason."""
    known = replace(facts, categories=facts.categories & policy.category_keys)
    try:
        rules.check_tier(policy, known, tier, on)
    except RuleError as exc:
        return exc.message
    return None


def stateless_quote(
    *, year: int, paid_on: date, members: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The quote of members described by the caller (no database); 422 naming member + field.

    `members` come from `QuoteMemberInSchema` (ID numbers already normalised). Every member's
    problems are reported at once, keyed by the member's index in the request.
    """
    try:
        policy = policy_for_year(year)
    except PolicyUnavailable as exc:
        raise InvalidInput(errors={"json": {"year": [year_message(year)]}}) from exc
    errors: dict[str, dict[str, list[str]]] = {}
    quotes: list[MemberQuote] = []
    births: list[BirthYearDue | None] = []
    for index, m in enumerate(members):
        problems: dict[str, list[str]] = {}
        categories = frozenset(m["categories"])
        unknown = sorted(categories - policy.category_keys)
        if unknown:
            problems["categories"] = [f"未知的人员类别：{'、'.join(unknown)}"]
        facts = PersonFacts(
            birth_date=birth_date_of(m["id_number"]),
            categories=categories,
            student=m["student"],
            employee_pension=m["employee_pension"],
            employee_medical=m["employee_medical"],
            residence_permit=m["residence_permit"],
            pension_tier=m["pension_tier"],
        )
        if m["pension_tier"] is not None and not unknown:
            problem = tier_error(policy, facts, m["pension_tier"], on=paid_on)
            if problem is not None:
                problems["pension_tier"] = [problem]
        if problems:
            errors[str(index)] = problems
            continue
        quote = rules.quote_member(policy, facts, paid_on)
        quotes.append(quote)
        births.append(birth_year_due(facts, quote, on=paid_on))
    if errors:
        raise InvalidInput(errors={"json": {"members": errors}})
    return {
        "year": year,
        "paid_on": paid_on,
        "late": rules.is_late(policy, paid_on),
        "collection_open": rules.collection_open(policy, paid_on),
        "members": [
            {
                "name": mask_name(m["name"].strip()) if m["name"].strip() else "",
                "id_number": mask_id_number(m["id_number"]),
                **member_body(q, birth),
            }
            for m, q, birth in zip(members, quotes, births, strict=True)
        ],
        "totals": totals_body(quotes),
    }
