"""Terminal rendering of a load ``Summary`` (rich tables); ``--json`` bypasses this."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from vmscale.workload.load_stats import GroupStats, Summary


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _table(title: str, key: str, groups: dict[str, GroupStats]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    for col in ("requests", "ok", "errors", "dropped", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for name, g in groups.items():
        d = g.to_dict()
        table.add_row(
            name,
            str(d["count"]),
            str(d["ok"]),
            str(d["errors"]),
            str(d["dropped"]),
            _ms(d["p50_s"]),
            _ms(d["p95_s"]),
            _ms(d["p99_s"]),
        )
    return table


def print_summary(summary: Summary, console: Console | None = None) -> None:
    console = console or Console()
    groups = {"all": summary.total}
    console.print(_table("Load summary", "", groups))
    console.print(_table("By phase", "phase", dict(summary.by_phase)))
    console.print(_table("By server", "server", dict(sorted(summary.by_server.items()))))
    rate = summary.send_rate
    duration = summary.duration_s
    console.print(
        f"sent {summary.total.count} request(s)"
        + (f" over {duration:.1f} s" if duration is not None else "")
        + (f" at {rate:.1f} req/s" if rate is not None else "")
    )
