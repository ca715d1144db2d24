"""Several groups in one config file: ``[[groups]]``, the one-group file of before, and every problem
of every group reported in one run at its exact path."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.config import parse_config
from vmscale.config.problems import ConfigProblems
from vmscale.config.schema import GROUP_SECTIONS, GroupSettings


def group(name: str, base_port: int, **sections: Any) -> dict[str, Any]:
    return {"group": {"name": name}, "provider": {"process": {"base_port": base_port}}, **sections}


def problems(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigProblems) as caught:
        parse_config(data, env=env)
    return [str(p) for p in caught.value.located]


def paths(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigProblems) as caught:
        parse_config(data, env=env)
    return [p.path for p in caught.value.located]


def test_a_file_without_groups_is_its_own_one_group() -> None:
    data = {
        "group": {"name": "api", "min": 2, "max": 6},
        "provider": {"kind": "process", "process": {"base_port": 19000}},
        "policies": [{"kind": "target", "name": "cpu", "target": 70}],
        "api": {"bind": "127.0.0.1:8901"},
    }
    cfg = parse_config(data)
    (only,) = cfg.group_settings()
    assert only is cfg and not cfg.uses_groups
    assert (only.group.name, only.group.min, only.group.max, only.provider.process.base_port) == (
        "api",
        2,
        6,
        19000,
    )
    assert [p.name for p in only.policies] == ["cpu"]
    assert cfg.settings_of("api") is cfg


def test_two_groups_each_with_their_own_sections_and_defaults_for_the_rest() -> None:
    cfg = parse_config(
        {
            "api": {"bind": "127.0.0.1:8901"},
            "groups": [
                group("web", 18100, lb={"kind": "haproxy"}, policies=[{"kind": "target", "target": 50}]),
                group("batch", 18200, template={"vcpus": 2}, health={"timeout_s": 3.0}),
            ],
        }
    )
    web, batch = cfg.group_settings()
    assert cfg.uses_groups and isinstance(web, GroupSettings)
    assert (web.group.name, web.lb.kind, [p.kind for p in web.policies]) == ("web", "haproxy", ["target"])
    assert (batch.group.name, batch.template.vcpus, batch.health.timeout_s, batch.lb.kind) == (
        "batch",
        2,
        3.0,
        "none",
    )
    assert batch.policies == [] and batch.drain == GroupSettings().drain
    assert cfg.settings_of("batch") is batch
    with pytest.raises(KeyError, match="its groups: web, batch"):
        cfg.settings_of("nope")


def test_group_sections_at_the_top_level_and_groups_at_once_is_an_error_naming_the_fix() -> None:
    found = problems({"group": {"max": 2}, "lb": {"kind": "none"}, "groups": [group("a", 18100)]})
    assert [f.split(":")[0] for f in found] == ["group", "lb"]
    assert "move it into each [[groups]] entry (groups[0].group, ...)" in found[0]
    assert "or remove [[groups]]" in found[0]


def test_every_problem_of_every_group_in_one_run_at_its_path() -> None:
    data = {
        "api": {"bind": "127.0.0.1:8900"},
        "groups": [
            group("web", 18100, policies=[{"kind": "target", "metric": "latency_p95", "target": 0.2}]),
            group("web", 18300, warm_pool={"size": 1, "kind": "saved"}),
            {
                "group": {"name": "Bad Name", "max": 0},
                "provider": {"process": {"base_port": 18500}},
                "policies": [{"kind": "target", "target": -1}],
                "colour": "blue",
            },
        ],
    }
    assert paths(data) == [
        "groups[2].group.name",
        "groups[2].group.max",
        "groups[2].policies[0].target",
        "groups[2].colour",
        "groups[0].policies[0].metric",  # latency_p95 without a balancer: a rule across sections
        "groups[1].warm_pool.kind",  # the process provider cannot save
        "groups[1].group.name",  # 'web' twice
    ]


def test_colliding_ports_between_groups_and_with_the_api_are_config_errors() -> None:
    haproxy = {"kind": "haproxy", "haproxy": {"bind": "127.0.0.1:8080", "stats_bind": "127.0.0.1:8404"}}
    data = {
        "api": {"bind": "127.0.0.1:18203"},
        "groups": [
            group("web", 18100, lb=haproxy),
            group("batch", 18102, lb=haproxy),  # instances 18103-18106 overlap web's 18101-18104
            group("vms", 18199, provider={"kind": "libvirt", "libvirt": {"base_port": 18199}}),
        ],
    }
    found = problems(data)
    assert [f.split(":")[0] for f in found] == [
        "groups[1].provider.process.base_port",
        "groups[1].lb.haproxy.bind",
        "groups[1].lb.haproxy.stats_bind",
        "groups[2].provider.libvirt.base_port",
    ]
    assert "instance ports (127.0.0.1:18103-18106) would clash with the instance ports " in found[0]
    assert "(127.0.0.1:18101-18104, groups[0].provider.process.base_port)" in found[0]
    assert "the control API (127.0.0.1:18203, api.bind)" in found[3]


def test_different_hosts_and_any_free_port_never_collide() -> None:
    cfg = parse_config(
        {
            "api": {"bind": "127.0.0.1:0"},
            "groups": [
                group("a", 18100),
                {"group": {"name": "b"}, "provider": {"process": {"base_port": 18100, "host": "127.0.0.2"}}},
            ],
        }
    )
    assert len(cfg.groups) == 2


def test_two_groups_writing_one_file_sd_file_is_an_error() -> None:
    sd = {"file_sd": {"path": "/tmp/targets.json"}}
    found = problems({"groups": [group("a", 18100, notify=sd), group("b", 18200, notify=sd)]})
    assert found == [
        "groups[1].notify.file_sd.path: '/tmp/targets.json' is also groups[0].notify.file_sd.path: each "
        "group needs its own file (Prometheus reads several: file_sd_configs: [{files: [A, B]}])"
    ]


def test_an_empty_groups_list_runs_nothing_and_says_so() -> None:
    assert paths({"groups": []}) == ["groups"]


def test_environment_sets_a_setting_of_one_group_by_its_index() -> None:
    data = {"groups": [group("a", 18100), group("b", 18200)]}
    env = {"VMSCALE_GROUPS__1__GROUP__MAX": "7", "VMSCALE_API__BIND": "127.0.0.1:8999"}
    cfg = parse_config(data, env=env)
    assert (cfg.groups[0].group.max, cfg.groups[1].group.max, cfg.api.bind) == (4, 7, "127.0.0.1:8999")
    assert data["groups"][1]["group"] == {"name": "b"}, "the file's data is not changed"
    data["groups"][1]["policies"] = [{"kind": "target", "target": 50}]
    cfg = parse_config(data, env={"VMSCALE_GROUPS__1__POLICIES__0__TARGET": "70"})
    assert cfg.groups[1].policies[0].target == 70.0, "a group's policy, by both indices"


def test_environment_mistakes_with_groups_name_the_variable() -> None:
    data = {"groups": [group("a", 18100), group("b", 18200)]}
    found = problems(
        data,
        env={
            "VMSCALE_GROUPS__1__GROUP__MAX": "many",
            "VMSCALE_GROUPS__2__GROUP__MAX": "3",
            "VMSCALE_GROUP__MAX": "3",
        },
    )
    assert sorted(found) == sorted(
        [
            "VMSCALE_GROUPS__2__GROUP__MAX (groups): the file has 2 groups; count them from 0",
            "VMSCALE_GROUP__MAX (group): this file has [[groups]], so a group's setting needs the group's "
            "index: VMSCALE_GROUPS__<N>__GROUP__... (N counted from 0)",
            "VMSCALE_GROUPS__1__GROUP__MAX (groups[1].group.max): Input should be a valid integer, unable to "
            "parse string as an integer",
        ]
    )


def test_every_group_section_is_a_section_of_a_one_group_file() -> None:
    """The controller takes a group's settings: a one-group file must offer them under the same names."""
    one = parse_config({})
    for name in GROUP_SECTIONS:
        assert getattr(one, name) == getattr(GroupSettings(), name)


def test_config_check_describes_every_group(tmp_path: Path) -> None:
    path = tmp_path / "groups.toml"
    path.write_text(
        "[api]\nbind = '127.0.0.1:8901'\n"
        "[[groups]]\ngroup = { name = 'web', max = 3 }\n"
        "[[groups]]\ngroup = { name = 'batch', min = 2, max = 5 }\n"
        "provider = { process = { base_port = 18200 } }\n"
    )
    result = CliRunner().invoke(cli_app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "Group 'web' runs 1 to 3 instance(s)" in result.stdout
    assert "Group 'batch' runs 2 to 5 instance(s)" in result.stdout
    assert "2 groups run in one controller. The control API listens on 127.0.0.1:8901" in result.stdout


def test_config_check_lists_every_groups_problem_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "groups.toml"
    path.write_text(
        "[[groups]]\ngroup = { name = 'web' }\n"
        "[[groups]]\ngroup = { name = 'web', max = 0 }\n"
        "[[groups]]\ngroup = { name = 'x' }\nprovider = { process = { base_port = 18101 } }\n"
    )
    result = CliRunner().invoke(cli_app, ["config", "check", str(path), "-o", "json"])
    assert result.exit_code == 2
    found = [p["path"] for p in json.loads(result.stdout)["problems"]]
    assert found == ["groups[1].group.max", "groups[2].provider.process.base_port"]


def test_config_example_groups_prints_a_valid_several_groups_file() -> None:
    result = CliRunner().invoke(cli_app, ["config", "example", "--groups"])
    assert result.exit_code == 0
    cfg = parse_config(tomllib.loads(result.stdout))
    assert len(cfg.groups) == 2


def test_each_group_has_its_own_workload_and_old_key_names_are_noted_at_its_path() -> None:
    cfg = parse_config(
        {
            "groups": [
                group("web", 18100, workload={"fib": {"max_n": 30}}),
                group("batch", 18200, template={"fib_max_n": 40}),  # the old name, in one group
            ]
        }
    )
    assert [g.workload.fib.max_n for g in cfg.groups] == [30, 40]
    assert cfg.notes == (
        "groups[1].template.fib_max_n is deprecated and was read as workload.fib.max_n: "
        "move it to [workload.fib] max_n = 40",
    )


def test_the_cluster_is_one_per_process_not_a_groups_section() -> None:
    assert "cluster" not in GROUP_SECTIONS and "workload" in GROUP_SECTIONS and "scaling" in GROUP_SECTIONS
    assert paths({"groups": [{"group": {"name": "a"}, "cluster": {}}]}) == ["groups[0].cluster"]


CLUSTER = {
    "hosts": [{"name": "h1", "uri": "qemu+tls://h1/system"}, {"name": "h2", "uri": "qemu+tls://h2/system"}]
}


def test_the_rules_that_read_the_cluster_apply_to_every_group_at_its_path() -> None:
    """A [[groups]] entry reads the file's one [cluster]: what one host's features need is checked
    per group (it was skipped: the group has no cluster section of its own)."""
    vertical = {
        "provider": {"kind": "libvirt"},
        "scaling": {"mode": "vertical-first"},
        "template": {"vcpus": 1, "max_vcpus": 2},
    }
    clones = {"provider": {"kind": "libvirt", "libvirt": {"launch": "clone", "base_port": 18300}}}
    data = {
        "cluster": CLUSTER,
        "groups": [{"group": {"name": "web"}, **vertical}, {"group": {"name": "b"}, **clones}],
    }
    found = problems(data)
    # vertical-first runs over the hosts (each resizes on its own host); clones are one host's files
    assert paths(data) == ["groups[1].provider.libvirt.launch"], found
    assert "not available with [[cluster.hosts]]" in found[0]
    assert 'use launch = "boot", or one host' in found[0]
    swapped = {**data, "groups": [{"group": {"name": "b"}, **clones}, {"group": {"name": "web"}, **vertical}]}
    assert paths(swapped) == ["groups[0].provider.libvirt.launch"]
    # the same group as a one-group file, and a process group beside the hosts, are judged alike
    assert paths({"cluster": CLUSTER, **clones}) == ["provider.libvirt.launch"]
    parse_config({"cluster": CLUSTER, "groups": [{"group": {"name": "p"}, "provider": {"kind": "process"}}]})


def test_config_check_says_a_libvirt_group_runs_over_the_clusters_hosts(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(
        "[[cluster.hosts]]\nname = 'h1'\nuri = 'qemu+tls://h1/system'\n"
        "[[cluster.hosts]]\nname = 'h2'\nuri = 'qemu+tls://h2/system'\n"
        "[[groups]]\ngroup = { name = 'web' }\nprovider = { kind = 'libvirt' }\n"
    )
    result = CliRunner().invoke(cli_app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "as libvirt VMs on 2 libvirt hosts" in result.stdout
    assert "placed over 2 hosts (h1, h2) by spread" in result.stdout
