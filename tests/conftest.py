"""Tiers by folder: tests/unit, tests/integration, tests/e2e get the marker of their tier, so
`pytest -m unit` runs the seconds-fast tier alone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that runs `vmscale up` in-process installs a root handler (``setup_logging``); put
    the root logger back afterwards, so that no later test's output carries another test's logs."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
