"""What does placing an instance cost? 1,000 instances over 100 hosts (goal: < 10 ms per decision).

    .venv/bin/python benchmarks/bench_placement.py [--runs 5]

Pure code (``vmscale.plan``): one decision among 100 hosts that already hold 1,000 of the group's
instances, placing 1,000 instances one after the other (spread and bin-pack), a drain of one host
and a consolidation plan after a scale-in. The I/O side, with libvirt's in-process test driver
(``test:///default``, the real libvirt API without a daemon): reading every host's facts for the
inventory, and the provider's listing, over 100 host connections. Medians of ``--runs`` runs;
writes benchmarks/results/placement.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from vmscale.bench.machine import write_result
from vmscale.config.hosts import ClusterConfig, HostConfig
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.hosts.inventory import HostInventory
from vmscale.hosts.multihost import MultiHostProvider
from vmscale.plan.consolidation import Placed, plan_consolidation, plan_drain
from vmscale.plan.placement import HostLimits, HostView, Request, place, place_all

HOSTS = 100
INSTANCES = 1_000
ZONES = ("a", "b", "c", "d")


def hosts(seed: int = 7, group_per_host: int = 0) -> list[HostView]:
    """100 hosts of 32 CPUs / 128 GiB in 4 zones, each already running some other load."""
    rnd = random.Random(seed)
    out = []
    for i in range(HOSTS):
        other = rnd.randint(0, 20)
        out.append(
            HostView(
                name=f"h{i:03d}",
                cpus=32,
                memory_total_mb=131072.0,
                memory_free_mb=131072.0 - 2048 * (other + group_per_host),
                running_vcpus=2 * (other + group_per_host),
                domains=other + group_per_host,
                group_instances=group_per_host,
                labels={"zone": ZONES[i % len(ZONES)], "rack": f"r{i // 10}"},
                limits=HostLimits(max_vcpu_overcommit=4.0, min_free_memory_mb=4096, max_instances=60),
            )
        )
    return out


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def pure(runs: int) -> dict[str, float]:
    full = hosts(group_per_host=INSTANCES // HOSTS)
    reqs = [Request(f"web-{i}", 2, 2048) for i in range(INSTANCES)]
    one = [median_ms(lambda s=s: place(reqs[0], full, strategy=s), runs * 200) for s in ("spread", "binpack")]  # type: ignore[misc]
    empty = hosts()
    seq = {s: median_ms(lambda s=s: place_all(reqs, empty, strategy=s), runs) for s in ("spread", "binpack")}  # type: ignore[misc]
    placements, after = place_all(reqs, empty)
    placed = [Placed(p.name, p.host or "", 2, 2048) for p in placements if p.host]
    drain = median_ms(lambda: plan_drain("h000", after, placed), runs)
    # after a scale-in to 30 %: every third instance stays, scattered over all 100 hosts
    kept = placed[::3]
    counts: dict[str, int] = {}
    for p in kept:
        counts[p.host] = counts.get(p.host, 0) + 1
    scaled_in = [
        HostView(
            name=h.name,
            cpus=h.cpus,
            memory_total_mb=h.memory_total_mb,
            memory_free_mb=h.memory_total_mb - 2048 * counts.get(h.name, 0),
            running_vcpus=2 * counts.get(h.name, 0),
            domains=counts.get(h.name, 0),
            group_instances=counts.get(h.name, 0),
            labels=h.labels,
            limits=h.limits,
        )
        for h in empty
    ]
    plan = plan_consolidation(scaled_in, kept)
    consolidate = median_ms(lambda: plan_consolidation(scaled_in, kept), runs)
    return {
        "one_decision_spread_ms": round(one[0], 3),
        "one_decision_binpack_ms": round(one[1], 3),
        "place_1000_spread_ms": round(seq["spread"], 1),
        "place_1000_binpack_ms": round(seq["binpack"], 1),
        "per_decision_in_place_1000_spread_ms": round(seq["spread"] / INSTANCES, 3),
        "drain_one_host_ms": round(drain, 3),
        "consolidate_334_over_100_hosts_ms": round(consolidate, 1),
        "consolidation_moves": len(plan.moves),
        "consolidation_hosts_emptied": len(plan.emptied),
    }


def io(runs: int, domains: int = 10) -> dict[str, float]:
    """Facts and listing over 100 connections to the test driver holding ``domains`` vmscale domains."""
    cfgs = [HostConfig(name=f"h{i:03d}", uri="test:///default") for i in range(HOSTS)]
    inv = HostInventory(cfgs, cluster=ClusterConfig(), defaults=HostLimits(), call_timeout_s=15)
    group = "bench"
    meta = "https://vmscale.dev/xmlns/instance/1"

    def define(conn: Any) -> int:
        have = {d.name() for d in conn.listAllDomains(0)}
        for i in range(1, domains + 1):
            name = f"{group}-{i}"
            if name not in have:
                conn.defineXML(
                    f"<domain type='test'><name>{name}</name><memory>524288</memory><vcpu>1</vcpu>"
                    f"<os><type>hvm</type></os><metadata><vmscale:instance xmlns:vmscale='{meta}' "
                    f"group='{group}' name='{name}' index='{i}' port='0' created='0'/></metadata></domain>"
                ).create()
        return len(conn.listAllDomains(0))

    total = inv.connection("h000").call("define", define)
    provider = MultiHostProvider(LibvirtProviderConfig(uri="test:///default", accel="tcg"), inv)
    refresh = median_ms(inv.refresh, runs)
    listing = median_ms(lambda: provider.list(group), runs)
    one_host = median_ms(lambda: inv._refresh_one(inv.handle("h000")), runs * 10)
    listed = len(provider.list(group))
    inv.close()
    return {
        "domains_per_host": total,
        "refresh_100_hosts_ms": round(refresh, 1),
        "facts_one_host_ms": round(one_host, 3),
        "list_100_hosts_ms": round(listing, 1),
        "listed_instances": listed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is reported)")
    args = parser.parse_args()
    results = {"pure": pure(args.runs), "io_test_driver": io(args.runs)}
    width = max(len(k) for part in results.values() for k in part)
    for part, figures in results.items():
        print(part)
        for k, v in figures.items():
            print(f"  {k:<{width}}  {v}")
    path = write_result("placement", {"hosts": HOSTS, "instances": INSTANCES, "runs": args.runs, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
