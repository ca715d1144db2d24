"""The scenario benchmark under TCG, at the size CI affords (one quick round of the step shape):
the original rule, the HPA's defaults and every vmscale variant on real guests, so the benchmark a
reader repeats is known to work.

It asserts what each variant *does* (instances, vCPUs, scale events, requests served), never how
fast: the figures belong in BENCHMARKS.md, and a slow CI machine must not fail this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO

VARIANTS = ("original", "hpa", "vmscale", "vmscale-warm", "vmscale-vertical", "vmscale-clone")


def test_the_scenario_runs_every_contender_on_real_guests(
    libvirt_daemons: str, guest_image: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scenario-libvirt.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/bench_scenario.py"),
            *("--provider", "libvirt", "--quick", "--rounds", "1", "--shapes", "step"),
            *("--variants", ",".join(VARIANTS), "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["params"]["provider"] == "libvirt"
    assert result["machine"]["cores"] and result["machine"]["date"], "the machine is recorded"
    runs = {name: rs[0] for name, rs in result["runs"]["step"].items()}
    assert set(runs) == set(VARIANTS)
    most = result["params"]["contenders"]["vmscale"]["max_count"]

    for name, fig in runs.items():
        assert fig["requests"] > 0 and fig["failed"] == 0, (name, fig)
        assert fig["instance_seconds"] > 0 and fig["vcpu_seconds"] >= fig["instance_seconds"], (name, fig)
        assert fig["load_1m"] is not None, "the host's load is recorded with each run"
    # The original rule goes to two once and never back.
    assert runs["original"]["peak_instances"] == 2 and runs["original"]["scale_events"] == 1
    assert runs["original"]["reversals"] == 0
    # The HPA's defaults scale out too (on a 15 s sync), and keep the capacity: a 300 s window.
    assert runs["hpa"]["peak_instances"] >= 2 and runs["hpa"]["reversals"] == 0
    # vmscale's default policy scales out under the overload, within its bound, without flapping.
    for name in ("vmscale", "vmscale-warm", "vmscale-clone"):
        assert 2 <= runs[name]["peak_instances"] <= most, (name, runs[name])
        assert runs[name]["reversals"] <= 1 and runs[name]["first_added_s"] is not None, (name, runs[name])
    # The warm pool parks an instance (it costs parked-seconds, not instance-seconds).
    assert runs["vmscale-warm"]["parked_seconds"] > 0
    # Vertical-first grows the one VM (a 2-vCPU guest is all a 2-core host has room for).
    vertical = runs["vmscale-vertical"]
    assert vertical["resizes"] >= 1 and vertical["peak_vcpus"] >= 2, vertical
    assert vertical["vcpu_seconds"] > vertical["instance_seconds"], "grown vCPUs cost vCPU-seconds"
    # The goals are judged for the step shape at each SLO, naming vmscale's best variant.
    judged = result["judged"]["step"]
    assert {"over_slo_0.5s", "over_slo_2s"} <= set(judged)
    assert judged["over_slo_2s"]["best"] in {"vmscale", "vmscale-warm", "vmscale-vertical", "vmscale-clone"}
