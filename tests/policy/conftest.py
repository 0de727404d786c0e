"""Fixtures for the policy tests: variants of the shipped 2020 file, written to a temp dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from api.policy.model import POLICY_DIR, Policy, load_policy_file

PolicyText = Callable[..., Path]


@pytest.fixture
def policy_file(tmp_path: Path) -> PolicyText:
    """A copy of policy_2020.toml with `(old, new)` replacements applied; each `old` must exist,
    so a test never passes because its edit silently missed."""

    def write(*edits: tuple[str, str]) -> Path:
        text = (POLICY_DIR / "policy_2020.toml").read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new, 1)
        path = tmp_path / "policy_2020.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def subsidised_policy(policy_file: PolicyText) -> Policy:
    """2020 with the amounts the plan leaves blank set, to exercise the subsidy rules:
    youfu 50 yuan, orphan 80 yuan, ages 60–69 60 yuan, 70+ 80 yuan (a tie with orphan)."""
    return load_policy_file(
        policy_file(
            ("youfu = 0", "youfu = 5000"),
            ("orphan = 0", "orphan = 8000"),
            (
                'label = "60-69"\nmin_age = 60\nmax_age_exclusive = 70\nsubsidy_fen = 0',
                'label = "60-69"\nmin_age = 60\nmax_age_exclusive = 70\nsubsidy_fen = 6000',
            ),
            (
                'label = "70+"\nmin_age = 70\nsubsidy_fen = 0',
                'label = "70+"\nmin_age = 70\nsubsidy_fen = 8000',
            ),
        )
    )
