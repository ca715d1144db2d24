"""The scenario benchmark under TCG, at the size CI affords (one quick round): the original
experiment run three ways on real guests, so the benchmark a reader repeats is known to work.

It asserts what each variant *does* (instances, scale events, requests served), never how fast:
the figures belong in BENCHMARKS.md, and a slow CI machine must not fail this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO


def test_the_scenario_runs_three_variants_on_real_guests(
    libvirt_daemons: str, guest_image: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scenario-libvirt.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/bench_scenario.py"),
            *("--provider", "libvirt", "--quick", "--rounds", "1", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["params"]["provider"] == "libvirt"
    assert result["machine"]["cores"] and result["machine"]["date"], "the machine is recorded"
    runs = {name: rs[0] for name, rs in result["runs"].items()}
    assert set(runs) == {"fixed", "original", "vmscale"}

    for name, fig in runs.items():
        assert fig["requests"] > 0 and fig["failed"] == 0, (name, fig)
        assert fig["instance_seconds"] > 0, (name, fig)
    # Doing nothing stays at one guest; the original rule goes to two once and never back.
    assert runs["fixed"]["peak_instances"] == 1 and runs["fixed"]["scale_events"] == 0
    assert runs["original"]["peak_instances"] == 2 and runs["original"]["scale_events"] == 1
    assert runs["original"]["reversals"] == 0
    # vmscale's default policy scales out under the overload, within its bound, without flapping.
    assert 2 <= runs["vmscale"]["peak_instances"] <= result["params"]["vmscale_max"]
    assert runs["vmscale"]["reversals"] <= 1
    # One guest for the whole run costs less than two for most of it: the accounting is sane.
    assert runs["fixed"]["instance_seconds"] < runs["original"]["instance_seconds"]
    assert set(result["ratios"]) >= {"cost_vmscale_over_original"}
