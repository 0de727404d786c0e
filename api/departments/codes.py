"""Departments 部门, the categories or events each one lists, and who pays (DOMAIN.md).

The category keys are the policy file's (`[categories]`); 卫健's age lists and 公安's events are
this package's own keys (they are not special-group categories: the age subsidy follows the ID
number, and a death is a fact about the person).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    keys: tuple[str, ...]
    kind: str  # "list": a roll replaced by each upload; "age": reconciled with the ID; "events"


DEPARTMENTS: dict[str, Department] = {
    d.code: d
    for d in (
        Department("civil_affairs", "民政局", ("dibao", "tekun", "youfu", "orphan"), "list"),
        Department("disabled_federation", "残联", ("disabled_severe",), "list"),
        Department("poverty_office", "扶贫办", ("poverty_registered", "poverty_lifted"), "list"),
        Department("health_commission", "卫健局", ("age_60_69", "age_70_plus"), "age"),
        Department("police", "公安局", ("death", "hukou_cancelled"), "events"),
    )
}
CODES = tuple(DEPARTMENTS)
# Chinese names staff may have typed when the account was made (the migration maps them).
ALIASES = {
    "民政": "civil_affairs",
    "民政局": "civil_affairs",
    "残联": "disabled_federation",
    "扶贫办": "poverty_office",
    "卫健": "health_commission",
    "卫健局": "health_commission",
    "卫健委": "health_commission",
    "公安": "police",
    "公安局": "police",
}
KEY_LABELS = {
    "age_60_69": "60–69 周岁",
    "age_70_plus": "70 周岁及以上",
    "death": "死亡",
    "hukou_cancelled": "户籍注销",
}
# Chinese words accepted in a list's category column beside the keys (and the policy's labels).
KEY_ALIASES = {
    "重度残疾人": "disabled_severe",
    "建档立卡贫困人口": "poverty_registered",
    "建档立卡已脱贫": "poverty_lifted",
    "已脱贫": "poverty_lifted",
    "低保": "dibao",
    "低保对象": "dibao",
    "特困": "tekun",
    "特困人员": "tekun",
    "五保": "tekun",
    "优抚对象": "youfu",
    "孤儿": "orphan",
    "60-69": "age_60_69",
    "60–69 周岁": "age_60_69",
    "70+": "age_70_plus",
    "70 周岁及以上": "age_70_plus",
    "死亡": "death",
    "户籍注销": "hukou_cancelled",
    "户口注销": "hukou_cancelled",
}
# 卫健's bands, by age on the policy's age reference date (policy [[medical.age_subsidies]]).
AGE_BANDS = {"age_60_69": (60, 70), "age_70_plus": (70, None)}

# DOMAIN.md "Which department pays": a person's medical 代缴 is in exactly one batch, the first
# of these that lists the person. hardship_approved (区财政) and tier-100 pension stay with the
# district batch (`flask payments government-batch`).
MEDICAL_PAYER_ORDER = ("poverty_office", "civil_affairs", "disabled_federation")


def department_of_key(key: str) -> str | None:
    for department in DEPARTMENTS.values():
        if key in department.keys:
            return department.code
    return None


def medical_payer(sources: set[str]) -> str | None:
    """The department paying a person's medical 代缴, given the departments that list the
    person under a government-paid category."""
    for code in MEDICAL_PAYER_ORDER:
        if code in sources:
            return code
    return None
