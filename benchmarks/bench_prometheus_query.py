"""From a Prometheus query to a scaling decision, against a real Prometheus on loopback.

Three instances (gauge exporters) are discovered through vmscale's file_sd output and scraped every
``--scrape-s``; a per-instance PromQL query maps their series back to instance names. Measured:

* **query**: one ``PrometheusSource.read`` (HTTP round trip, the server's evaluation, parsing);
* **query to decision**: ``SourcePoller.poll`` (the read, run inline) -> snapshot -> the policy
  set's decision, i.e. what a controller tick adds on top of its other work;
* **change to value**: from an exporter changing its value to the query returning it — bounded by
  the scrape interval, which is Prometheus' side, not vmscale's.

Run:  .venv/bin/python benchmarks/bench_prometheus_query.py [--reads 200] [--changes 10]
Prints a table and writes benchmarks/results/prometheus_query.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from vmscale.bench.machine import write_result
from vmscale.bench.prometheus import GaugeExporter, PrometheusServer
from vmscale.clock import SystemClock
from vmscale.config.metrics import PrometheusMetricConfig
from vmscale.config.notify import FileSdConfig
from vmscale.config.policy import TargetPolicyConfig
from vmscale.controller.executor import InlineExecutor
from vmscale.metrics_sources import PrometheusSource, SourcePoller
from vmscale.model import InstanceSnapshot, InstanceState, Sample, Snapshot
from vmscale.notify.file_sd import FileSdWriter, ScrapeTarget
from vmscale.policy import build_policy_set


def summary(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=20, method="inclusive")
    return {
        "median_ms": statistics.median(samples) * 1e3,
        "p95_ms": q[18] * 1e3,
        "max_ms": max(samples) * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=200, help="queries timed for the first two figures")
    ap.add_argument("--changes", type=int, default=10, help="value changes timed for the third")
    ap.add_argument("--scrape-s", type=float, default=1.0, help="Prometheus scrape interval")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    group = "bq" + uuid.uuid4().hex[:6]
    names = [f"{group}-{i}" for i in (1, 2, 3)]
    with tempfile.TemporaryDirectory(prefix="vmscale-bench-prom-") as tmp:
        sd_path = Path(tmp) / "sd.json"
        exporters = {n: GaugeExporter().start() for n in names}
        FileSdWriter(FileSdConfig(path=str(sd_path)), group).update(
            [ScrapeTarget(n, e.url) for n, e in exporters.items()]
        )
        for i, e in enumerate(exporters.values()):
            e.set("bench_queue", 10.0 * (i + 1))
        query = f'bench_queue{{vmscale_group="{group}"}}'
        cfg = PrometheusMetricConfig(
            name="queue", query=query, instance_label="vmscale_instance", url="http://x"
        )
        try:
            with PrometheusServer(
                Path(tmp) / "prom", file_sd=[sd_path], scrape_interval_s=args.scrape_s
            ) as prom:
                source = PrometheusSource(cfg.model_copy(update={"url": prom.url}))
                deadline = time.monotonic() + 60
                while len(source.read(names).instances) < 3:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"Prometheus did not scrape the exporters: {prom.log_tail()}")
                    time.sleep(0.1)
                reads = [source.read(names).duration_s for _ in range(args.reads)]
                decisions = time_decisions(source, names, args.reads)
                changes = time_changes(source, exporters, names, args.changes)
                source.close()
        finally:
            for e in exporters.values():
                e.stop()

    rows = {
        "query": summary(reads),
        "query_to_decision": summary(decisions),
        "change_to_value": summary(changes),
    }
    print(f"{'measure':<20} {'median':>10} {'p95':>10} {'max':>10}")
    for k, r in rows.items():
        print(f"{k:<20} {r['median_ms']:>8.1f}ms {r['p95_ms']:>8.1f}ms {r['max_ms']:>8.1f}ms")
    path = write_result(
        "prometheus_query",
        {"reads": args.reads, "changes": args.changes, "scrape_interval_s": args.scrape_s, "results": rows},
        args.out,
    )
    print(f"wrote {path}")


def time_decisions(source: PrometheusSource, names: list[str], count: int) -> list[float]:
    clock = SystemClock()
    ps = build_policy_set(
        [TargetPolicyConfig(name="queue", metric="queue", target=10.0, down_stabilization_s=0)],
        min_count=1,
        max_count=10,
    )
    poller = SourcePoller([source], InlineExecutor(), clock)
    out = []
    for _ in range(count):
        start = time.perf_counter()
        ext = poller.poll(names)
        now = clock.now()
        insts = tuple(
            InstanceSnapshot(n, InstanceState.READY, samples=(Sample(now, extra=ext.instance_extra(n)),))
            for n in names
        )
        decision, _ = ps.decide(Snapshot(now, 3, 1, 10, insts, metric_notes=ext.notes), ps.initial_state())
        out.append(time.perf_counter() - start)
        assert decision.desired == 6, decision.reason  # mean 20 against a target of 10
    return out


def time_changes(
    source: PrometheusSource, exporters: dict[str, GaugeExporter], names: list[str], count: int
) -> list[float]:
    out = []
    for k in range(count):
        time.sleep(random.uniform(0, 1.0))  # a random phase against the scrape interval
        value = 1000.0 + k
        start = time.perf_counter()
        exporters[names[0]].set("bench_queue", value)
        while source.read(names).instances.get(names[0]) != value:
            if time.perf_counter() - start > 30:
                raise SystemExit("the changed value never came back")
            time.sleep(0.01)
        out.append(time.perf_counter() - start)
    return out


if __name__ == "__main__":
    main()
