"""`vmscale config check` finds every problem in one run, each at its exact path: rules across
sections run even when other settings are wrong, settings that could not work are refused with the
fix in the message (capabilities asked of the provider catalog), the control API's bind address is
checked, and `VMSCALE_SECTION__KEY` environment variables override the file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.cli.describe import describe
from vmscale.config import ConfigProblems, parse_config
from vmscale.provider_catalog import CATALOG


def problems_of(data: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    """path (or 'VAR (path)') -> message, for every problem of ``data``."""
    with pytest.raises(ConfigProblems) as info:
        parse_config(data, env=env)
    return {p.where(): p.message for p in info.value.located}


def check(tmp_path: Path, text: str, *args: str, env: dict[str, str] | None = None) -> Any:
    cfg = tmp_path / "v.toml"
    cfg.write_text(text)
    return CliRunner().invoke(cli_app, ["config", "check", str(cfg), *args], env=env)


THREE_MISTAKES = """
[group]
nmae = "web"
[[policies]]
kind = "target"
target = -5
[warm_pool]
size = 1
kind = "saved"
"""


def test_three_mistakes_one_across_sections_are_all_reported_in_one_run(tmp_path: Path) -> None:
    result = check(tmp_path, THREE_MISTAKES)
    assert result.exit_code == 2
    assert "3 problem(s)" in result.stderr
    for where in (
        "group.nmae: unknown setting",
        "policies[0].target:",
        "warm_pool.kind: the process provider",
    ):
        assert where in result.stderr, where


def test_rules_inside_a_section_run_beside_a_wrong_sibling() -> None:
    found = problems_of({"group": {"name": "Web_1", "min": 5, "max": 3}})
    assert set(found) == {"group.name", "group.max"}
    assert "lowercase letters" in found["group.name"]
    assert found["group.max"] == "max (3) must be >= min (5)"


def test_a_rule_is_skipped_when_a_setting_it_reads_is_wrong() -> None:
    """min = -1 is reported once; max is not also blamed for being below a value that is wrong."""
    assert set(problems_of({"group": {"min": -1, "max": 3}})) == {"group.min"}


@pytest.mark.parametrize(
    ("data", "path", "fix"),
    [
        pytest.param(
            {"policies": [{"kind": "threshold", "upper": 50, "lower": 60, "samples_up": 0}]},
            "policies[0].lower",
            "must be below upper",
            id="threshold-bounds-beside-a-bad-count",
        ),
        pytest.param(
            {"policies": [{"kind": "step", "upper": None, "steps_up": [{"adjustment": 0}]}]},
            "policies[0].lower",
            "set upper, lower or both",
            id="step-without-bounds",
        ),
        pytest.param(
            {"policies": [{"kind": "target", "target": 95, "down_stabilization_s": -1}]},
            "policies[0].tolerance",
            "puts 100% inside the dead band",
            id="unreachable-cpu-target-beside-a-bad-window",
        ),
    ],
)
def test_policy_rules_are_reported_at_the_field(data: dict[str, Any], path: str, fix: str) -> None:
    found = problems_of(data)
    assert fix in found[path], found
    assert len(found) == 2, found  # and the other mistake of the same policy


@pytest.mark.parametrize(
    ("data", "path", "fix"),
    [
        pytest.param(
            {"provider": {"kind": "libvirt", "libvirt": {"boot": "disk"}}},
            "provider.libvirt.cloud_image",
            "needs a qcow2 cloud image: set provider.libvirt.cloud_image",
            id="disk-boot-without-an-image",
        ),
        pytest.param(
            {"policies": [{"kind": "target", "metric": "latency_p95", "target": 0.5}]},
            "policies[0].metric",
            "set lb.kind = 'haproxy'",
            id="latency-policy-without-a-balancer",
        ),
        pytest.param(
            {"warm_pool": {"size": 2, "kind": "saved"}},
            "warm_pool.kind",
            "use kind = 'paused', or provider.kind = 'libvirt'",
            id="saved-warm-pool-on-processes",
        ),
        pytest.param(
            {"policies": [{"kind": "target"}, {"kind": "step", "name": "target"}]},
            "policies[1].name",
            "'target' is already the name of policies[0]",
            id="duplicate-policy-names",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_fix(
    data: dict[str, Any], path: str, fix: str
) -> None:
    found = problems_of(data)
    assert list(found) == [path]
    assert fix in found[path]


def test_the_warm_pool_rule_asks_the_provider_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """No table in the schema: a provider that declares 'saved' passes, and the message is its own."""
    monkeypatch.setitem(CATALOG, "process", CATALOG["libvirt"])
    parse_config({"warm_pool": {"size": 2, "kind": "saved"}})
    monkeypatch.setitem(CATALOG, "libvirt", CATALOG["fake"].__class__("libvirt", ("paused",), False))
    found = problems_of({"provider": {"kind": "libvirt"}, "warm_pool": {"size": 2, "kind": "saved"}})
    assert "the libvirt provider cannot keep warm instances 'saved'" in found["warm_pool.kind"]


def test_vertical_first_asks_the_provider_catalog_whether_it_can_resize(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = {"scaling": {"mode": "vertical-first"}, "template": {"vcpus": 1, "max_vcpus": 2}}
    parse_config(data)  # the process provider resizes (a cgroup quota and its worker count)
    monkeypatch.setitem(CATALOG, "process", CATALOG["process"].__class__("process", ("paused",), False))
    found = problems_of(data)
    assert list(found) == ["scaling.mode"]
    assert "the process provider cannot resize a running instance" in found["scaling.mode"]
    assert "provider.kind = 'libvirt'" in found["scaling.mode"]


def test_vertical_first_runs_over_cluster_hosts_but_clones_do_not() -> None:
    """Each host's provider resizes its own domains (checked against that host's headroom); a golden
    snapshot is one host's files, so clones stay refused there, with the fix."""
    data: dict[str, Any] = {
        "provider": {"kind": "libvirt"},
        "scaling": {"mode": "vertical-first"},
        "template": {"vcpus": 1, "max_vcpus": 2},
        "cluster": {"hosts": [{"name": "a", "uri": "qemu+tls://a/system"}]},
    }
    parse_config(data)
    found = problems_of({**data, "provider": {"kind": "libvirt", "libvirt": {"launch": "clone"}}})
    assert list(found) == ["provider.libvirt.launch"]
    assert "not available with [[cluster.hosts]]" in found["provider.libvirt.launch"]


def test_what_works_passes(tmp_path: Path) -> None:
    image = tmp_path / "debian.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True, timeout=30)
    parse_config(
        {
            "provider": {"kind": "libvirt", "libvirt": {"boot": "disk", "cloud_image": str(image)}},
            "lb": {"kind": "haproxy"},
            "policies": [{"kind": "target", "metric": "latency_p95", "target": 0.5}],
            "warm_pool": {"size": 1, "kind": "saved"},
        }
    )


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ("0.0.0.0:99999", "port 99999 is outside 0..65535"),
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("::1:8900", "put an IPv6 address in brackets"),
        ("[::zz]:8900", "[::zz] is not an IPv6 address"),
        ("my host:8900", "'my host' is not a host name or IP address"),
    ],
)
def test_a_bad_api_bind_fails_config_check(tmp_path: Path, bind: str, message: str) -> None:
    result = check(tmp_path, f'[api]\nbind = "{bind}"\n')
    assert result.exit_code == 2
    assert f"api.bind: {message}" in result.stderr


@pytest.mark.parametrize("bind", ["127.0.0.1:0", "[::1]:8900", "localhost:8900", "0.0.0.0:8900"])
def test_good_api_binds_pass(bind: str) -> None:
    parse_config({"api": {"bind": bind}})


def test_describe_says_what_runs_without_policies() -> None:
    text = describe(parse_config({}))
    assert "No scaling policy is configured" not in text
    assert "No [[policies]] are configured, so the default runs: 'target' holds cpu near 60" in text


def test_describe_names_schedule_windows() -> None:
    cfg = parse_config(
        {
            "policies": [
                {
                    "kind": "schedule",
                    "entries": [{"start": "0 9 * * MON-FRI", "end": "30 17 * * MON-FRI", "min": 3}],
                }
            ]
        }
    )
    assert "'schedule' keeps at least 3 from 0 9 * * MON-FRI to 30 17 * * MON-FRI (UTC)" in describe(cfg)


# ------------------------------------------------------------------------- environment overrides


def test_environment_overrides_the_file() -> None:
    env = {"VMSCALE_GROUP__MAX": "6", "VMSCALE_PROVIDER__LIBVIRT__URI": "qemu:///session"}
    cfg = parse_config({"group": {"max": 3}}, env=env)
    assert cfg.group.max == 6 and cfg.provider.libvirt.uri == "qemu:///session"


def test_a_policy_of_the_file_is_overridden_by_its_index() -> None:
    cfg = parse_config(
        {"policies": [{"kind": "target", "target": 60}]}, env={"VMSCALE_POLICIES__0__TARGET": "70"}
    )
    assert cfg.policies[0].target == 70  # type: ignore[union-attr]


def test_lower_case_names_work_and_the_commands_own_variables_are_not_settings() -> None:
    env = {
        "vmscale_group__min": "2",
        "VMSCALE_API": "http://127.0.0.1:8900",  # the operator commands' API address
        "VMSCALE_TOKEN": "secret-token",
        "VMSCALE_TOKENS": "read:secret-token",
    }
    assert parse_config({}, env=env).group.min == 2


@pytest.mark.parametrize(
    ("env", "where", "message"),
    [
        ({"VMSCALE_GROUP__MAX": "0"}, "VMSCALE_GROUP__MAX (group.max)", "greater than or equal to 1"),
        ({"VMSCALE_GROUP__MAX": "six"}, "VMSCALE_GROUP__MAX (group.max)", "valid integer"),
        ({"VMSCALE_GROUP__MAXX": "6"}, "VMSCALE_GROUP__MAXX (group.maxx)", "unknown setting"),
        ({"VMSCALE_GRUOP__MAX": "6"}, "VMSCALE_GRUOP__MAX (gruop)", "not a section of the config"),
        ({"VMSCALE_API__BIND": "0.0.0.0:99999"}, "VMSCALE_API__BIND (api.bind)", "outside 0..65535"),
        ({"VMSCALE_POLICIES__2__TARGET": "5"}, "VMSCALE_POLICIES__2__TARGET (policies)", "count them from 0"),
    ],
)
def test_a_bad_override_is_reported_at_the_variable(env: dict[str, str], where: str, message: str) -> None:
    found = problems_of({"policies": [{"kind": "target"}]}, env=env)
    assert message in found[where], found


def test_config_check_applies_and_names_the_environment(tmp_path: Path) -> None:
    result = check(tmp_path, "[group]\nmax = 3\n", env={"VMSCALE_GROUP__MAX": "6"})
    assert result.exit_code == 0, result.output
    assert "runs 1 to 6 instance(s)" in result.stdout
    assert "Set from the environment: VMSCALE_GROUP__MAX." in result.stdout


# ------------------------------------------------------------------------------ --json / -o json


@pytest.mark.parametrize("flag", [["--json"], ["-o", "json"]])
def test_config_check_json_lists_problems(tmp_path: Path, flag: list[str]) -> None:
    result = check(tmp_path, THREE_MISTAKES, *flag)
    assert result.exit_code == 2
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert [p["path"] for p in body["problems"]] == ["group.nmae", "policies[0].target", "warm_pool.kind"]


def test_config_check_json_when_valid(tmp_path: Path) -> None:
    result = check(tmp_path, "[group]\nmax = 3\n", "-o", "json", env={"VMSCALE_GROUP__MIN": "2"})
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is True and body["env_overrides"] == ["VMSCALE_GROUP__MIN"]
    assert body["config"]["group"] == {**body["config"]["group"], "min": 2, "max": 3}
    assert body["description"].startswith("Group 'web' runs 2 to 3 instance(s)")


def test_memory_room_is_for_vertical_first_on_libvirt() -> None:
    room = {"vcpus": 1, "max_vcpus": 2, "memory_mb": 512, "max_memory_mb": 1024}
    libvirt_vertical = {
        "provider": {"kind": "libvirt"},
        "scaling": {"mode": "vertical-first"},
        "template": room,
    }
    cfg = parse_config(libvirt_vertical)
    assert "grows in place up to 2 vCPUs, its memory with them up to 1024 MiB by balloon" in describe(cfg)
    horizontal = problems_of({**libvirt_vertical, "scaling": {"mode": "horizontal"}})
    assert list(horizontal) == ["template.max_memory_mb"]
    assert "only scaling.mode = 'vertical-first'" in horizontal["template.max_memory_mb"]
    process = problems_of({**libvirt_vertical, "provider": {"kind": "process"}})
    assert list(process) == ["template.max_memory_mb"]
    assert "the process provider does not size memory" in process["template.max_memory_mb"]
    below = problems_of({"template": {**room, "max_memory_mb": 256}})
    assert "max_memory_mb (256) must be at least memory_mb (512)" in below["template.max_memory_mb"]
    parse_config({"template": {**room, "max_memory_mb": 512}})  # no room asked for: fine anywhere


@pytest.mark.parametrize(
    ("vcpus", "memory"),
    [(1, 512), (2, 682), (3, 853), (4, 1024), (0, 512), (9, 1024)],  # linear, rounded down, clamped
)
def test_memory_follows_the_vcpus_linearly(vcpus: int, memory: int) -> None:
    from vmscale.providers.libvirt.resize import memory_room

    room = memory_room(vcpus=1, max_vcpus=4, memory_mb=512, max_memory_mb=1024)
    assert room is not None and room.at(vcpus) == memory


def test_no_memory_room_without_more_memory_or_more_vcpus() -> None:
    from vmscale.providers.libvirt.resize import memory_room

    assert memory_room(1, 4, 512, None) is None
    assert memory_room(1, 4, 512, 512) is None
    assert memory_room(2, 2, 512, 1024) is None
