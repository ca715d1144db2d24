"""The sample Grafana dashboard queries only metrics that vmscale exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from vmscale.metrics import ControllerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json"


def exported_series() -> set[str]:
    names: set[str] = set()
    for family in ControllerMetrics("web").registry.collect():
        base = family.name
        kinds = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}.get(
            family.type, [""]
        )
        names.update(base + k for k in kinds)
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dash["annotations"]["list"]]
    exprs += [v["definition"] for v in dash["templating"]["list"]]
    return exprs


def test_every_queried_metric_exists() -> None:
    used = {m for e in dashboard_exprs() for m in re.findall(r"\bvmscale_[a-z0-9_]+", e)}
    assert used, "the dashboard queries nothing"
    assert used <= exported_series(), sorted(used - exported_series())


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for p in json.loads(DASHBOARD.read_text())["panels"]:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        assert g["x"] + g["w"] <= 24
        cells |= mine
