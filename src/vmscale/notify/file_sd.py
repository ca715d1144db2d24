"""The group's instances as a Prometheus ``file_sd`` file, so Prometheus scrapes what vmscale runs.

    writer = FileSdWriter(cfg.notify.file_sd, group="web", publish=bus_publisher(events))
    writer.update([ScrapeTarget("web-1", "http://127.0.0.1:18101", host="local"), ...])

The file is the list Prometheus' ``file_sd_configs`` reads: one entry per instance, its address
(``host:port`` of the endpoint) and the labels ``vmscale_group``, ``vmscale_instance`` and
``vmscale_host`` plus the configured ones. A per-instance Prometheus query can then map its series
back to instances with ``instance_label = "vmscale_instance"``.

Prometheus watches the file and may read it at any moment, so it is replaced atomically (a
temporary file in the same folder, fsynced, then renamed over it) and only when its content
changes. A failed write is reported as an event and retried on the next change, never raised
into the controller.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from vmscale.config.notify import FileSdConfig
from vmscale.event_kinds import FieldsEvent, Publish, discard


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One instance to scrape: its name, its endpoint URL and the host it runs on."""

    name: str
    endpoint: str
    host: str = "local"


@dataclass(frozen=True, slots=True)
class FileSdWritten(FieldsEvent):
    TYPE: ClassVar[str] = "file_sd"
    path: str
    targets: int
    error: str = ""


def file_sd_entries(
    targets: Iterable[ScrapeTarget], group: str, labels: dict[str, str] | None = None, metrics_path: str = ""
) -> list[dict[str, Any]]:
    """The file's content: one entry per target, sorted by name so that equal sets compare equal."""
    entries = []
    for t in sorted(targets, key=lambda t: t.name):
        parts = urlsplit(t.endpoint)
        address = parts.netloc.rsplit("@", 1)[-1]
        if not address:
            continue  # not launched far enough to have an address
        target_labels = {
            **(labels or {}),
            "vmscale_group": group,
            "vmscale_instance": t.name,
            "vmscale_host": t.host,
        }
        if metrics_path:
            target_labels["__metrics_path__"] = metrics_path
        if parts.scheme == "https":
            target_labels["__scheme__"] = "https"
        entries.append({"targets": [address], "labels": target_labels})
    return entries


class FileSdWriter:
    """Keeps ``cfg.path`` equal to the targets it was last given. Safe to call every tick."""

    def __init__(self, cfg: FileSdConfig, group: str, publish: Publish = discard) -> None:
        self.path = Path(cfg.path).expanduser()
        self.group = group
        self._labels = dict(cfg.labels)
        self._metrics_path = cfg.metrics_path
        self._publish = publish
        self._written: list[dict[str, Any]] | None = None

    def update(self, targets: Iterable[ScrapeTarget]) -> bool:
        """Write the file if its content changed; True when it was written."""
        entries = file_sd_entries(targets, self.group, self._labels, self._metrics_path)
        if entries == self._written:
            return False
        try:
            write_atomically(self.path, json.dumps(entries, indent=2) + "\n")
        except OSError as exc:
            self._publish(FileSdWritten(str(self.path), len(entries), error=f"{exc.strerror or exc}"))
            return False
        self._written = entries
        self._publish(FileSdWritten(str(self.path), len(entries)))
        return True

    def clear(self) -> bool:
        """No targets (the group was taken down): Prometheus stops scraping them."""
        return self.update([])


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # Prometheus usually runs as another user; mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
