"""The lease rules every backend follows (``vmscale.store.lease``), and the store URL / [state] checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmscale.config import parse_config
from vmscale.config.state import parse_store_url
from vmscale.errors import ConfigError
from vmscale.store import lease as rules
from vmscale.store.base import FencedError, Lease

NOW = 1000.0
HELD = Lease("web", "A", 3, "a:1", 990.0, 995.0, 1010.0)  # A holds epoch 3 until 1010
EXPIRED = Lease("web", "A", 3, "a:1", 970.0, 980.0, 995.0)
RELEASED = Lease("web", "", 3, "", 970.0, 990.0, 990.0)


@pytest.mark.parametrize(
    ("row", "holder", "replacing", "epoch"),
    [
        (None, "B", "", 1),
        (HELD, "B", "", None),
        (EXPIRED, "B", "", 4),
        (RELEASED, "B", "", 4),
        (HELD, "A", "", 4),  # its own lease again: a new term, the old epoch's writes stop
        (HELD, "B", "A", 4),  # A is known dead
        (HELD, "B", "C", None),  # the dead one is not the holder
    ],
    ids=["never-held", "held-by-another", "expired", "released", "own", "replacing-dead", "replacing-other"],
)
def test_acquire(row: Lease | None, holder: str, replacing: str, epoch: int | None) -> None:
    got = rules.acquire(row, "web", holder, 15.0, NOW, address="b:1", replacing=replacing)
    if epoch is None:
        assert got is None
    else:
        assert got == Lease("web", holder, epoch, "b:1", NOW, NOW, NOW + 15.0)


def test_acquire_needs_a_duration() -> None:
    with pytest.raises(ValueError, match="positive duration"):
        rules.acquire(None, "web", "A", 0.0, NOW)


@pytest.mark.parametrize("row", [HELD, EXPIRED], ids=["held", "expired-but-nobody-took-it"])
def test_renew_extends_the_current_lease(row: Lease) -> None:
    mine = Lease("web", "A", 3, "a:1", 990.0, 995.0, 1010.0)
    assert rules.renew(row, mine, 15.0, NOW) == Lease("web", "A", 3, "a:1", row.acquired_at, NOW, NOW + 15.0)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (None, "nobody holds it now"),
        (RELEASED, "nobody holds it now at epoch 3"),
        (Lease("web", "B", 4, "b:1", 999.0, 999.0, 1014.0), "'B' holds it at epoch 4"),
        (Lease("web", "A", 5, "a:1", 999.0, 999.0, 1014.0), "'A' holds it at epoch 5"),  # A again, later term
    ],
    ids=["no-row", "released", "taken-by-another", "own-later-term"],
)
def test_a_lease_that_is_not_current_is_fenced(row: Lease | None, message: str) -> None:
    mine = Lease("web", "A", 3, "a:1", 990.0, 995.0, 1010.0)
    with pytest.raises(FencedError, match="epoch 3 is no longer current") as err:
        rules.renew(row, mine, 15.0, NOW)
    assert message in str(err.value) and "stand by" in str(err.value)
    with pytest.raises(FencedError):
        rules.check(row, mine)
    assert rules.release(row, mine, NOW) is None


def test_release_clears_the_holder_and_expires_now() -> None:
    released = rules.release(HELD, HELD, NOW)
    assert released == Lease("web", "", 3, "", 990.0, NOW, NOW)
    assert rules.acquire(released, "web", "B", 15.0, NOW) is not None


def test_info_measures_age_and_expiry_on_the_store_clock() -> None:
    info = rules.info(HELD, NOW)
    assert (info.holder, info.epoch, info.age_s, info.expires_in_s, info.held) == ("A", 3, 5.0, 10.0, True)
    assert not rules.info(EXPIRED, NOW).held
    assert not rules.info(RELEASED, NOW).held


# -- store URLs and the [state] section ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("/var/lib/vmscale/state.db", "sqlite", Path("/var/lib/vmscale/state.db")),
        ("state.db", "sqlite", Path("state.db")),
        ("sqlite:///var/lib/vmscale/state.db", "sqlite", Path("/var/lib/vmscale/state.db")),
        ("postgresql://vmscale@db1:5432/vmscale", "postgres", None),
        ("postgres://vmscale@/vmscale?host=/run/postgresql", "postgres", None),
    ],
)
def test_store_urls(url: str, kind: str, path: Path | None) -> None:
    parsed = parse_store_url(url)
    assert (parsed.kind, parsed.path) == (kind, path)
    if kind == "postgres":
        assert parsed.conninfo == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the store URL is empty"),
        ("postgresql://vmscale:s3cret@db1/vmscale", "must not contain a password"),
        ("postgresql://vmscale@db1/vmscale?password=s3cret", "must not contain a password"),
        ("mysql://x@y/z", "unknown store scheme 'mysql'"),
        ("sqlite://", "sqlite:// needs a file path"),
    ],
    ids=["empty", "password-in-url", "password-in-query", "unknown-scheme", "sqlite-without-path"],
)
def test_bad_store_urls_say_what_to_do(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_store_url(url)


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"url": "postgresql://v:pw@h/d"}, "must not contain a password"),
        ({"url": "postgresql://v@h/d", "db": "x.db"}, "either state.db"),
        ({"password_file": "/etc/pw"}, "password_file is for a postgresql"),
        ({"url": "sqlite:///x.db", "password_file": "/etc/pw"}, "password_file is for a postgresql"),
        ({"lease": {"duration_s": 10, "renew_deadline_s": 10}}, "must be below duration_s"),
        ({"lease": {"retry_s": 10}}, "must be below renew_deadline_s"),
    ],
    ids=["password", "db-and-url", "password-file-alone", "password-file-sqlite", "deadline", "retry"],
)
def test_state_section_problems_are_named(state: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as err:
        parse_config({"state": state})
    assert "state" in str(err.value)


def test_state_defaults_and_store_url() -> None:
    cfg = parse_config({})
    assert (cfg.state.lease.duration_s, cfg.state.lease.renew_deadline_s, cfg.state.lease.retry_s) == (
        15,
        10,
        2,
    )
    assert cfg.state.store_url(Path("/s")) == "/s/state.db"
    assert parse_config({"state": {"db": "/x.db"}}).state.store_url(Path("/s")) == "/x.db"
    pg = parse_config({"state": {"url": "postgresql://v@h/d", "password_file": "/etc/pw"}})
    assert pg.state.store_url(Path("/s")) == "postgresql://v@h/d"
