"""`vmscale store ...`: move an installation's history from SQLite to a real PostgreSQL server
without losing a decision, refuse to overwrite, inspect who leads, migrate an old file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.integration.test_store_migrations import LEGACY_SCHEMA
from vmscale.cli import app
from vmscale.store import InstanceRow, SqlStore, open_store
from vmscale.store.transfer import export_rows

runner = CliRunner()


def config_file(tmp_path: Path, name: str, state: dict[str, str]) -> Path:
    lines = ["[group]", 'name = "web"', "[state]", f'dir = "{tmp_path / name}"']
    lines += [f'{k} = "{v}"' for k, v in state.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def installation(store: SqlStore, decisions: int = 40) -> None:
    """What a controller leaves behind: a group, instances with transitions, a decision history,
    written under a lease (epoch 1) then released."""
    lease = store.leases("web").try_acquire("old-host/1/1.0", 30.0, address="127.0.0.1:8900")
    assert lease is not None
    view = store.fenced(lease)
    view.save_group("web", 3, False, {"cpu": {"streak": 2}}, 10.0)
    for i in range(1, 4):
        row = InstanceRow(f"web-{i}", "web", i, "pending", vcpus=1, details={"epoch": "1"})
        view.put_instance(row, 10.0 + i, src="(none)", reason="launch requested")
        row.state, row.endpoint, row.warm = "ready", f"http://127.0.0.1:{8000 + i}", i == 3
        view.put_instance(row, 11.0 + i, src="booting", reason="healthy")
    for i in range(decisions):
        view.append_decision("web", 20.0 + i, "autoscaler", {"desired": 1 + i % 3, "reason": f"tick {i}"})
    store.leases("web").release(lease)


def exported(tmp_path: Path, decisions: int) -> Path:
    """An export file of an ``installation`` kept in a SQLite file."""
    source = open_store(tmp_path / "a.db")
    installation(source, decisions=decisions)
    source.close()
    out = tmp_path / "a.jsonl"
    result = runner.invoke(app, ["store", "export", "--url", str(tmp_path / "a.db"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def snapshot(store: SqlStore) -> list[tuple[str, dict[str, object]]]:
    return [(t, r) for t, r in export_rows(store) if t != "leases"]


def test_move_from_sqlite_to_postgres_keeps_every_decision(tmp_path: Path, postgres_url: str) -> None:
    old_cfg = config_file(tmp_path, "old", {})
    new_cfg = config_file(tmp_path, "new", {"url": postgres_url})
    source = open_store(tmp_path / "old" / "state.db")
    installation(source)
    before = snapshot(source)
    source.close()
    out = tmp_path / "state.jsonl"

    exported = runner.invoke(app, ["store", "export", "-c", str(old_cfg), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert "groups 1, instances 3, transitions 6, decisions 40, leases 1" in exported.output
    imported = runner.invoke(app, ["store", "import", str(out), "-c", str(new_cfg)])
    assert imported.exit_code == 0, imported.output
    assert "imported into postgresql://" in imported.output
    assert "groups 1, instances 3, transitions 6, decisions 40, leases 1" in imported.output

    target = open_store(postgres_url)
    try:
        assert snapshot(target) == before
        assert [d["reason"] for d in target.decisions("web", limit=100)] == [f"tick {i}" for i in range(40)]
        lease = target.leases("web").try_acquire("new-host/1/1.0", 30.0)  # epochs go on, never repeat
        assert lease is not None and lease.epoch == 2
        target.fenced(lease).append_decision("web", 99.0, "autoscaler", {"reason": "after the move"})
        assert target.decisions("web", limit=2)[-1]["reason"] == "after the move"  # ids continue
    finally:
        target.close()


def test_import_refuses_a_non_empty_store_unless_forced(tmp_path: Path, postgres_url: str) -> None:
    out = exported(tmp_path, decisions=5)
    target = open_store(postgres_url)
    target.append_decision("other", 1.0, "alice", {"desired": 7})
    target.close()

    refused = runner.invoke(app, ["store", "import", str(out), "--url", postgres_url])
    assert refused.exit_code == 1
    assert "is not empty (1 decisions)" in refused.output and "--force" in refused.output
    target = open_store(postgres_url)
    assert [d["actor"] for d in target.decisions("other")] == ["alice"]  # nothing changed
    target.close()

    forced = runner.invoke(app, ["store", "import", str(out), "--url", postgres_url, "--force"])
    assert forced.exit_code == 0, forced.output
    target = open_store(postgres_url)
    try:
        assert target.decisions("other") == []
        assert len(target.decisions("web")) == 5
    finally:
        target.close()


def test_import_refuses_a_store_a_controller_leads_even_forced(tmp_path: Path) -> None:
    out = exported(tmp_path, decisions=2)
    busy = open_store(tmp_path / "busy.db")
    assert busy.leases("web").try_acquire("running-host/7/7.0", 60.0) is not None
    busy.close()
    result = runner.invoke(app, ["store", "import", str(out), "--url", str(tmp_path / "busy.db"), "--force"])
    assert result.exit_code == 1
    assert "controller 'running-host/7/7.0' leads 'web'" in result.output


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda lines: lines[:-3], "truncated (no closing counts line)"),
        (lambda lines: [lines[0], *lines[2:]], "incomplete"),
        (lambda lines: ['{"not": "an export"}', *lines[1:]], "not a vmscale store export"),
        (lambda lines: [*lines[:1], "{oops", *lines[1:]], "not JSON"),
        (lambda lines: [lines[0], '{"table": "secrets", "row": {}}', *lines[1:]], "unknown table 'secrets'"),
    ],
    ids=["truncated", "row-missing", "no-header", "not-json", "unknown-table"],
)
def test_a_damaged_export_is_refused_before_anything_is_written(
    tmp_path: Path, mangle: Callable[[list[str]], list[str]], message: str
) -> None:
    out = exported(tmp_path, decisions=3)
    out.write_text("\n".join(mangle(out.read_text().splitlines())) + "\n")
    result = runner.invoke(app, ["store", "import", str(out), "--url", str(tmp_path / "b.db")])
    assert result.exit_code == 2
    assert message in result.output
    target = open_store(tmp_path / "b.db")
    try:
        assert target.decisions("web") == []
    finally:
        target.close()


def test_migrate_reports_an_unversioned_file(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "old.db")
    db.executescript(LEGACY_SCHEMA)
    db.close()
    result = runner.invoke(app, ["store", "migrate", "--url", f"sqlite://{tmp_path / 'old.db'}"])
    assert result.exit_code == 0, result.output
    assert (
        "migrated from version 1 (an unversioned database, recognised as version 1) to version"
        in result.output
    )
    again = runner.invoke(app, ["store", "migrate", "--url", str(tmp_path / "old.db")])
    assert "(up to date)" in again.output


def test_status_shows_the_leader_and_every_controller(tmp_path: Path, postgres_url: str) -> None:
    cfg = config_file(tmp_path, "pg", {"url": postgres_url})
    store = open_store(postgres_url)
    lease = store.leases("web").try_acquire("host-a/1/1.0", 60.0, address="10.1.0.1:8900")
    assert lease is not None
    store.leases("web").heartbeat("host-a/1/1.0", "10.1.0.1:8900", "leader")
    store.leases("web").heartbeat("host-b/2/2.0", "10.1.0.2:8900", "standby")
    store.close()
    text = runner.invoke(app, ["store", "status", "-c", str(cfg)])
    assert text.exit_code == 0, text.output
    assert "led by host-a/1/1.0 at 10.1.0.1:8900, epoch 1" in text.output
    lines = [line for line in text.output.splitlines() if "host-" in line and "led by" not in line]
    assert lines[0].lstrip().startswith("* host-a/1/1.0") and "standby" in lines[1]
    data = json.loads(runner.invoke(app, ["store", "status", "-c", str(cfg), "--json"]).output)
    assert data["leader"]["id"] == "host-a/1/1.0" and data["epoch"] == 1
    assert [(c["id"], c["leads"]) for c in data["controllers"]] == [
        ("host-a/1/1.0", True),
        ("host-b/2/2.0", False),
    ]

    exported = runner.invoke(app, ["store", "export", "-c", str(cfg), "-o", str(tmp_path / "x.jsonl")])
    assert exported.exit_code == 0
    assert "warning: controller host-a/1/1.0 (10.1.0.1:8900) leads 'web' right now" in exported.output


@pytest.mark.parametrize(
    "args", [["store", "migrate"], ["store", "migrate", "-c", "x.toml", "--url", "y.db"]]
)
def test_exactly_one_of_config_and_url(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "give either --config FILE or --url URL" in result.output


def test_a_password_in_the_url_is_refused_at_the_command_line() -> None:
    result = runner.invoke(app, ["store", "status", "--url", "postgresql://v:secret@127.0.0.1:1/v"])
    assert result.exit_code == 1
    assert "must not contain a password" in result.output


@pytest.mark.parametrize("command", ["migrate", "export", "import", "status"])
def test_help_has_examples(command: str) -> None:
    result = runner.invoke(app, ["store", command, "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.output and f"vmscale store {command}" in result.output


def test_up_and_down_with_an_unreachable_store_say_so_without_a_traceback(tmp_path: Path) -> None:
    cfg = config_file(
        tmp_path, "unreachable", {"url": f"postgresql://vmscale@/vmscale?host={tmp_path}&port=5999"}
    )
    for command in (["up", "-c", str(cfg)], ["down", "-c", str(cfg)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        text = " ".join(result.output.split())  # rich wraps long lines
        assert text.startswith("error: cannot connect to postgresql://") and text.endswith("retry later")
        assert "Traceback" not in result.output
