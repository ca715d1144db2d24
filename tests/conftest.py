"""Tiers by folder: tests/unit, tests/integration, tests/e2e get the marker of their tier, so
`pytest -m unit` runs the seconds-fast tier alone."""

from __future__ import annotations

from pathlib import Path

import pytest

_TIERS = ("unit", "integration", "e2e")

pytest_plugins = ["tests.support.postgres"]  # postgres_server, postgres_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
