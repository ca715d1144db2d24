"""Logging for long-running commands: text for a terminal, or one JSON object per line for the
journal and log shippers (``--log-format json``).

JSON uses python-json-logger rather than a home-made formatter: it keeps what a hand-rolled one
dropped (the traceback of ``log.exception``, ``stack_info``, fields passed with ``extra=``) and
escapes everything correctly. The field names stay those vmscale always wrote: ``t`` (epoch
seconds), ``level`` (lower case), ``logger``, ``msg``; a traceback is in ``exc_info``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")


class VmscaleJsonFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "{created}{levelname}{name}{message}",
            style="{",
            rename_fields={"created": "t", "levelname": "level", "name": "logger", "message": "msg"},
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["t"] = round(float(log_data["t"]), 3)
        log_data["level"] = str(log_data["level"]).lower()
        return super().process_log_record(log_data)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not to the one at set-up: a
    thread that logs after stderr was swapped (a test runner, a daemonising wrapper) must not hit a
    closed stream."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(fmt: str, verbose: bool = False) -> None:
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(VmscaleJsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    # httpx and httpcore log every request at INFO: a health probe per instance per tick would bury
    # what vmscale itself says. Their warnings still show; --verbose shows everything.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if verbose else logging.WARNING)
