"""Errors of the policy package: a bad policy file, and rule refusals a client can cause."""

from __future__ import annotations


class PolicyError(Exception):
    """The policy file is missing or invalid; raised at load, so a bad file never serves."""


class RuleError(Exception):
    """A request the policy refuses; `code` is stable, `message` is Chinese for residents."""

    code = "rule_error"
    message = "不符合缴费政策"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.message
        self.field = field
        super().__init__(self.message)


class UnknownCategory(RuleError):
    """A category key not defined by the year's policy."""

    code = "unknown_category"
    message = "未知的人员类别"


class UnknownTier(RuleError):
    """A pension tier the year's policy does not have."""

    code = "unknown_tier"
    message = "没有该养老保险缴费档次"


class TierNotAllowed(RuleError):
    """A tier this person may not take (the 100 tier outside the hardship groups)."""

    code = "tier_not_allowed"
    message = "100元档次仅限重度残疾人、未脱贫建档立卡贫困人口、低保对象和特困人员"


class NotEligible(RuleError):
    """A pension choice for a person who may not join the resident pension."""

    code = "not_eligible"
    message = "该人员不符合居民养老保险参保条件"


class UnknownYear(RuleError):
    """No policy file for the requested insurance year."""

    code = "unknown_year"
    message = "该年度缴费政策尚未发布"
