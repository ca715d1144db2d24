"""Which group an operator command talks to, and every group when it shows them all.

A controller runs one group or several. ``--group NAME`` (or ``$VMSCALE_GROUP``) names one and the
command uses ``/v1/groups/NAME/...``; without it the command uses the one-group paths of before
(``/v1/group``, ``/v1/instances``...), which a one-group controller answers as it always did and a
several-groups controller refuses with the list of its groups (HTTP 400, exit 2) — so a change
never lands on a group nobody named. ``status``, ``instances`` and ``logs`` show every group instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rich.table import Table

from vmscale.cli import fmt
from vmscale.cli.api_client import ApiClient, ApiError, listing

# The one-group path of each resource and its place under /v1/groups/NAME.
ONE_GROUP_PATHS = {
    "": "/v1/group",
    "/instances": "/v1/instances",
    "/desired": "/v1/group/desired",
    "/pause": "/v1/group/pause",
    "/resume": "/v1/group/resume",
    "/decisions": "/v1/decisions",
}


def group_path(group: str | None, resource: str = "") -> str:
    """``/v1/groups/NAME{resource}`` for a named group, else the one-group path of ``resource``."""
    if group:
        return f"/v1/groups/{quote(group, safe='')}{resource}"
    return ONE_GROUP_PATHS[resource]


def every_group(client: ApiClient) -> list[dict[str, Any]]:
    """Every group's status, in the controller's order. A controller from before groups (no
    ``/v1/groups``: 404) runs one group, which ``/v1/group`` is."""
    try:
        return listing(client.request("GET", "/v1/groups"), "groups")
    except ApiError as exc:
        if exc.status != 404:
            raise
    one = client.request("GET", "/v1/group")
    return [one] if isinstance(one, dict) else []


def with_group(rows: list[dict[str, Any]], group: str) -> list[dict[str, Any]]:
    """Rows of one group, each saying which (instances and decisions read from several groups)."""
    return [{**row, "group": row.get("group") or group} for row in rows]


def groups_table(groups: list[dict[str, Any]]) -> Table:
    """Every group on one line: counts, bounds, whether paused, where it runs, its last decision."""
    table = Table(title=f"{len(groups)} group(s)", title_justify="left")
    for col in ("group", "desired", "actual", "ready", "min / max", "paused", "provider", "lb", "frontend"):
        table.add_column(col, justify="right" if col in ("desired", "actual", "ready") else "left")
    table.add_column("last decision")
    for g in groups:
        last = g.get("last_decision")
        table.add_row(
            str(g.get("name")),
            str(g.get("desired")),
            str(g.get("actual")),
            str(g.get("ready")),
            f"{g.get('min')} / {g.get('max')}",
            "yes" if g.get("paused") else "no",
            str(g.get("provider")),
            str(g.get("lb")),
            str(g.get("frontend_url") or "–"),
            f"{fmt.clock(last.get('t'))} {fmt.decision_line(last)}" if last else "–",
        )
    return table
