"""The Prometheus metric source and the file_sd output against a REAL Prometheus server (Debian's
`prometheus`, started here on a loopback port with a generated config and its own storage, stopped
by pid): Prometheus discovers the instances from vmscale's file_sd file, scrapes them, and the
source maps its series back to the instances; a syntax error, an empty result and a server that
is down each give "no data" with a clear note, and a policy fed by the source holds on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.wait import wait_until
from vmscale.bench.prometheus import GaugeExporter, PrometheusServer
from vmscale.clock import SystemClock
from vmscale.config.metrics import PrometheusMetricConfig
from vmscale.config.notify import FileSdConfig
from vmscale.config.policy import TargetPolicyConfig
from vmscale.controller.executor import InlineExecutor
from vmscale.metrics_sources import PrometheusSource, Reading, SourcePoller
from vmscale.model import InstanceSnapshot, InstanceState, Sample, Snapshot
from vmscale.notify.file_sd import FileSdWriter, ScrapeTarget
from vmscale.policy import build_policy_set
from vmscale.ports import free_port

GROUP = "pt" + uuid.uuid4().hex[:6]
DISCOVERY_S = 60.0  # file_sd is watched (inotify) and re-read every 5 s; scrapes are every 1 s


class Setup:
    def __init__(self, prom: PrometheusServer, sd: FileSdWriter, exporters: dict[str, GaugeExporter]) -> None:
        self.prom = prom
        self.sd = sd
        self.exporters = exporters

    def targets(self, names: list[str]) -> list[ScrapeTarget]:
        return [ScrapeTarget(n, self.exporters[n].url, host="local") for n in names]

    def source(self, query: str, **cfg: object) -> PrometheusSource:
        return PrometheusSource(PrometheusMetricConfig(name="queue", url=self.prom.url, query=query, **cfg))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("prometheus")
    sd_path = tmp / "sd" / f"{GROUP}.json"
    names = [f"{GROUP}-1", f"{GROUP}-2", f"{GROUP}-3"]
    exporters = {n: GaugeExporter().start() for n in names}
    sd = FileSdWriter(FileSdConfig(path=str(sd_path), labels={"env": "test"}), GROUP)
    prom = PrometheusServer(tmp / "prom", file_sd=[sd_path])
    try:
        s = Setup(prom, sd, exporters)
        sd.update(s.targets(names[:2]))  # the third instance is not running yet
        prom.start()
        yield s
    finally:
        prom.stop()
        for e in exporters.values():
            e.stop()


def discovered(s: Setup) -> dict[str, dict[str, str]]:
    """Instance name -> labels of every target Prometheus scrapes successfully."""
    return {
        t["labels"]["vmscale_instance"]: t["labels"]
        for t in s.prom.active_targets()
        if t.get("health") == "up" and "vmscale_instance" in t["labels"]
    }


def test_prometheus_discovers_the_instances_from_the_file_sd_output(setup: Setup) -> None:
    one, two, three = (f"{GROUP}-{i}" for i in (1, 2, 3))
    wait_until(lambda: set(discovered(setup)) == {one, two}, "both instances discovered and up", DISCOVERY_S)
    labels = discovered(setup)[one]
    assert labels["vmscale_group"] == GROUP and labels["vmscale_host"] == "local" and labels["env"] == "test"
    assert labels["instance"] == setup.exporters[one].address
    # A scale-out and a scale-in: the file follows the set, and Prometheus follows the file.
    assert setup.sd.update(setup.targets([one, three]))
    assert not setup.sd.update(setup.targets([three, one])), "an unchanged set must not rewrite the file"
    wait_until(lambda: set(discovered(setup)) == {one, three}, "the new set discovered", DISCOVERY_S)


def test_per_instance_values_come_back_by_instance_label(setup: Setup) -> None:
    names = [f"{GROUP}-{i}" for i in (1, 2, 3)]
    setup.sd.update(setup.targets(names))
    for value, name in zip((3.0, 7.5, 11.0), names, strict=True):
        setup.exporters[name].set("test_queue", value)
    source = setup.source(f'test_queue{{vmscale_group="{GROUP}"}}', instance_label="vmscale_instance")
    want = {names[0]: 3.0, names[1]: 7.5, names[2]: 11.0}
    last: list[Reading] = []

    def values() -> bool:
        last[:] = [source.read(names)]
        return dict(last[0].instances) == want

    wait_until(values, "per-instance values from Prometheus", DISCOVERY_S, state=lambda: last)
    assert not last[0].failed and last[0].note == "" and last[0].duration_s < source.timeout_s
    # The values move with what the instances expose.
    setup.exporters[names[1]].set("test_queue", 1.0)
    wait_until(lambda: source.read(names).instances.get(names[1]) == 1.0, "the changed value", DISCOVERY_S)
    # An instance of another group (not among the names asked for) is left out, and said so.
    reading = source.read(names[:2])
    assert set(reading.instances) == set(names[:2]) and not reading.failed
    source.close()


def test_one_value_for_the_group(setup: Setup) -> None:
    names = [f"{GROUP}-1", f"{GROUP}-2"]
    setup.sd.update(setup.targets(names))
    setup.exporters[names[0]].set("test_load", 4.0)
    setup.exporters[names[1]].set("test_load", 6.0)
    source = setup.source(f'sum(test_load{{vmscale_group="{GROUP}"}})')
    wait_until(lambda: source.read(names).group == 10.0, "the group's sum", DISCOVERY_S)
    several = setup.source(f'test_load{{vmscale_group="{GROUP}"}}')
    wait_until(lambda: several.read(names).failed, "two series refused for one group value", DISCOVERY_S)
    assert "aggregate it" in several.read(names).note
    source.close()
    several.close()


def test_a_syntax_error_is_no_data_in_the_servers_words(setup: Setup) -> None:
    # Mistakes the config-time check cannot be sure of; the server's parser is the final word.
    for query, words in (
        ("test_queue{vmscale_group=}", "parse error"),
        ("rate(test_queue)", "expected type range vector"),
    ):
        source = setup.source(query)
        reading = source.read([])
        assert reading.failed and not reading.has_data
        assert "Prometheus rejected the query (bad_data)" in reading.note, reading.note
        assert words in reading.note, reading.note
        source.close()


def test_an_empty_result_is_no_data(setup: Setup) -> None:
    source = setup.source('test_queue{vmscale_group="no-such-group"}')
    reading = source.read([])
    assert not reading.failed and not reading.has_data and "query returned no series" in reading.note
    zero = setup.source('test_queue{vmscale_group="no-such-group"}', on_empty="zero")
    assert zero.read([]).group == 0.0
    source.close()
    zero.close()


def test_prometheus_down_is_no_data_with_the_address() -> None:
    port = free_port()  # nothing listens there
    source = PrometheusSource(
        PrometheusMetricConfig(name="q", url=f"http://127.0.0.1:{port}", query="up", timeout_s=2)
    )
    reading = source.read([])
    assert reading.failed and not reading.has_data
    assert f"cannot reach Prometheus at http://127.0.0.1:{port}" in reading.note
    source.close()


def test_a_policy_fed_by_the_source_scales_up_and_holds_on_a_broken_query(setup: Setup) -> None:
    """The path the controller takes: poll -> snapshot -> policies -> decision."""
    names = [f"{GROUP}-1", f"{GROUP}-2"]
    setup.sd.update(setup.targets(names))
    for name in names:
        setup.exporters[name].set("test_backlog", 30.0)
    query = f'test_backlog{{vmscale_group="{GROUP}"}}'
    ps = build_policy_set(
        [TargetPolicyConfig(name="backlog", metric="queue", target=10.0, down_stabilization_s=0)],  # type: ignore[arg-type]
        min_count=1,
        max_count=10,
    )
    clock = SystemClock()

    def decide(source: PrometheusSource) -> tuple[int, str]:
        ext = SourcePoller([source], InlineExecutor(), clock).poll(names)
        now = clock.now()
        insts = tuple(
            InstanceSnapshot(
                n, InstanceState.READY, samples=(Sample(now, cpu=50.0, extra=ext.instance_extra(n)),)
            )
            for n in names
        )
        snap = Snapshot(now, 2, 1, 10, insts, metric_notes=ext.notes)
        decision, _ = ps.decide(snap, ps.initial_state())
        return decision.desired, decision.reason

    good = setup.source(query, instance_label="vmscale_instance")
    result = wait_until(
        lambda: (r := decide(good))[0] == 6 and r, "a scale-up to 6 on the queue", DISCOVERY_S
    )
    assert "queue 30 over target 10 across 2 ready instances" in result[1]
    broken = setup.source(f"rate({query})", instance_label="vmscale_instance")
    desired, reason = decide(broken)
    assert desired == 2 and "Prometheus rejected the query" in reason
    good.close()
    broken.close()
