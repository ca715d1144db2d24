"""The file_sd output: what Prometheus reads (targets, labels), written atomically and only when
the set changes; a failed write is an event, never an exception into the controller."""

from __future__ import annotations

import json
from pathlib import Path

from vmscale.config.notify import FileSdConfig
from vmscale.event_kinds import EventKind
from vmscale.notify.file_sd import FileSdWriter, FileSdWritten, ScrapeTarget, file_sd_entries


def test_entries_carry_the_address_and_the_instance_labels() -> None:
    entries = file_sd_entries(
        [
            ScrapeTarget("web-2", "https://10.0.0.5:8443", host="hv-b"),
            ScrapeTarget("web-1", "http://127.0.0.1:18101/", host="local"),
            ScrapeTarget("web-3", "", host="local"),  # launching: no endpoint yet
        ],
        "web",
        labels={"env": "prod", "vmscale_group": "overridden?"},
        metrics_path="/stats",
    )
    assert entries == [
        {
            "targets": ["127.0.0.1:18101"],
            "labels": {
                "env": "prod",
                "vmscale_group": "web",
                "vmscale_instance": "web-1",
                "vmscale_host": "local",
                "__metrics_path__": "/stats",
            },
        },
        {
            "targets": ["10.0.0.5:8443"],
            "labels": {
                "env": "prod",
                "vmscale_group": "web",
                "vmscale_instance": "web-2",
                "vmscale_host": "hv-b",
                "__metrics_path__": "/stats",
                "__scheme__": "https",
            },
        },
    ]


def test_written_when_changed_atomically_and_readable_by_prometheus(tmp_path: Path) -> None:
    path = tmp_path / "sd" / "web.json"
    seen: list[EventKind] = []
    writer = FileSdWriter(FileSdConfig(path=str(path)), "web", publish=seen.append)
    assert writer.update([ScrapeTarget("web-1", "http://127.0.0.1:18101")])
    assert json.loads(path.read_text())[0]["targets"] == ["127.0.0.1:18101"]
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["web.json"], "a temporary file was left behind"
    inode = path.stat().st_ino
    assert not writer.update([ScrapeTarget("web-1", "http://127.0.0.1:18101")])
    assert path.stat().st_ino == inode, "an unchanged set rewrote the file"
    assert writer.clear() and json.loads(path.read_text()) == []
    assert seen == [FileSdWritten(str(path), 1), FileSdWritten(str(path), 0)]


def test_a_failed_write_is_an_event_and_is_retried_on_the_next_update(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    seen: list[EventKind] = []
    writer = FileSdWriter(FileSdConfig(path=str(blocker / "web.json")), "web", publish=seen.append)
    target = [ScrapeTarget("web-1", "http://127.0.0.1:18101")]
    assert not writer.update(target)
    assert len(seen) == 1 and isinstance(seen[0], FileSdWritten) and seen[0].error
    blocker.unlink()
    assert writer.update(target), "the same set must be written once the path works"
