"""Config of the integrations: external metrics and the policies naming them, lifecycle hooks,
decision webhooks, file_sd and the original client's notifier. Every mistake is reported at config
check time, with its path and the fix, and nothing is started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmscale.config import parse_config
from vmscale.errors import ConfigError
from vmscale.model import ExternalMetric, Metric

PROM = {"name": "queue_depth", "query": "sum(queue_length)"}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test")
    return info.value.problems


def test_a_policy_can_name_an_external_metric() -> None:
    cfg = parse_config(
        {
            "metrics": {"prometheus": [PROM]},
            "policies": [
                {"kind": "target", "name": "queue", "metric": "queue_depth", "target": 10},
                {"kind": "threshold", "metric": "cpu"},
            ],
        }
    )
    assert cfg.policies[0].metric == "queue_depth"  # type: ignore[union-attr]
    # Named like a built-in one: a str with .value, whatever code reads it.
    assert isinstance(cfg.policies[0].metric, ExternalMetric)  # type: ignore[union-attr]
    assert cfg.policies[0].metric.value == "queue_depth"  # type: ignore[union-attr]
    assert cfg.policies[1].metric is Metric.CPU  # type: ignore[union-attr]
    assert [m.name for m in cfg.metrics.sources] == ["queue_depth"]


def test_an_unknown_metric_names_the_policy_and_the_fix() -> None:
    (p,) = problems(
        {
            "metrics": {"prometheus": [PROM]},
            "policies": [{"kind": "step", "metric": "queue_dept", "upper": 5}],
        }
    )
    assert "policies[0].metric: unknown metric 'queue_dept'" in p
    assert "[[metrics.prometheus]]" in p and "defined: queue_depth" in p and "cpu, rps" in p


def test_a_metric_name_that_cannot_be_one() -> None:
    (p,) = problems({"policies": [{"kind": "target", "metric": "Queue-Depth"}]})
    assert p.startswith("policies[0].metric:") and "neither a built-in metric" in p


def test_every_problem_of_a_prometheus_entry_at_once() -> None:
    (p,) = problems(
        {
            "metrics": {
                "prometheus": [
                    {
                        "name": "rps",
                        "url": "http://127.0.0.1:9090/api/v1/query",
                        "query": "sum(rate(x[1m])",
                        "instance_label": "0bad",
                    }
                ]
            }
        }
    )
    assert p.startswith("metrics.prometheus[0]:")
    for words in (
        "name 'rps' is a built-in metric",
        "give the server's base URL",
        "query: '(' opened at column 4 is never closed",
        "instance_label '0bad' is not a Prometheus label name",
    ):
        assert words in p


def test_repeated_metric_names() -> None:
    (p,) = problems({"metrics": {"prometheus": [PROM, PROM]}})
    assert "metrics: names must be unique, repeated: queue_depth" in p


def test_bearer_token_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    (p,) = problems({"metrics": {"prometheus": [{**PROM, "bearer_token_file": str(missing)}]}})
    assert f"bearer_token_file '{missing}' is not a file" in p
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    parse_config({"metrics": {"prometheus": [{**PROM, "bearer_token_file": str(token)}]}})


def test_a_url_that_is_not_http() -> None:
    (p,) = problems({"metrics": {"prometheus": [{**PROM, "url": "127.0.0.1:9090"}]}})
    assert "must be an http:// or https:// URL" in p


@pytest.mark.parametrize(
    ("hook", "words"),
    [
        pytest.param({"name": "h"}, "set either command (an argv list) or url", id="neither"),
        pytest.param({"name": "h", "command": ["true"], "url": "http://127.0.0.1:1/"}, "not both", id="both"),
        pytest.param(
            {"name": "h", "command": ["no-such-program-xyz"]},
            "'no-such-program-xyz' is not on PATH",
            id="not-on-path",
        ),
        pytest.param(
            {"name": "h", "command": ["/no/such/file"]}, "'/no/such/file' does not exist", id="missing"
        ),
        pytest.param(
            {"name": "h", "command": ["true"], "token_file": "/etc/hostname"},
            "token_file is for webhooks",
            id="token",
        ),
        pytest.param({"name": "h", "url": "ftp://x/"}, "must be an http:// or https:// URL", id="bad-url"),
    ],
)
def test_hook_mistakes(hook: dict[str, Any], words: str) -> None:
    (p,) = problems({"hooks": {"launch": [hook]}})
    assert p.startswith("hooks.launch[0]:") and words in p, p


def test_a_hook_command_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    (p,) = problems({"hooks": {"terminate": [{"name": "h", "command": [str(script)]}]}})
    assert "is not executable (chmod +x it)" in p
    script.chmod(0o755)
    cfg = parse_config({"hooks": {"terminate": [{"name": "h", "command": [str(script)]}]}})
    assert cfg.hooks.of("terminate")[0].default_result == "abandon"


def test_hook_names_are_unique_across_phases() -> None:
    hook = {"name": "same", "command": ["true"]}
    (p,) = problems({"hooks": {"launch": [hook], "terminate": [hook]}})
    assert "hooks: names must be unique, repeated: same" in p


def test_webhook_settings() -> None:
    cfg = parse_config({"notify": {"webhooks": [{"url": "http://127.0.0.1:9/x", "directions": ["up"]}]}})
    assert cfg.notify.webhooks[0].directions == ["up"] and cfg.notify.webhooks[0].queue_size == 100
    assert problems({"notify": {"webhooks": [{"url": "x", "directions": ["sideways"]}]}})


def test_file_sd_labels_must_be_label_names() -> None:
    (p,) = problems({"notify": {"file_sd": {"path": "/tmp/x.json", "labels": {"__address__": "x"}}}})
    assert "'__address__' is not a usable label name" in p


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        pytest.param({}, "set exactly one of authkey_file or authkey_env", id="no-authkey"),
        pytest.param(
            {"authkey_env": "K", "authkey_file": "/etc/hostname"}, "set exactly one of", id="both-authkeys"
        ),
        pytest.param(
            {"authkey_file": "/no/such/key"}, "authkey_file '/no/such/key' is not a file", id="missing-file"
        ),
        pytest.param(
            {"authkey_env": "K", "launched_port": 6000},
            "launching_port and launched_port are both 6000",
            id="ports",
        ),
        pytest.param(
            {"authkey_env": "K", "launched": ["VM Launched {ip}"]},
            "unknown placeholder {ip}; use {group}",
            id="ph",
        ),
        pytest.param(
            {"authkey_env": "K", "launching": ["VM {url} Launching"]},
            "unknown placeholder {url}",
            id="ph-launching",
        ),
        pytest.param({"authkey_env": "K", "launched": []}, "each need at least one message", id="no-message"),
    ],
)
def test_original_client_mistakes(settings: dict[str, Any], words: str) -> None:
    (p,) = problems({"notify": {"original_client": {"enabled": True, **settings}}})
    assert p.startswith("notify.original_client:") and words in p, p


def test_original_client_defaults_are_the_original() -> None:
    cfg = parse_config({"notify": {"original_client": {"enabled": True, "authkey_env": "K"}}})
    oc = cfg.notify.original_client
    assert (oc.host, oc.launching_port, oc.launched_port) == ("localhost", 6000, 6001)
    assert (oc.launching, oc.launched, oc.send_as) == (["VM Launching"], ["VM Launched"], "object")


def test_config_check_says_what_the_integrations_will_do(tmp_path: Path) -> None:
    from vmscale.cli.describe import describe

    cfg = parse_config(
        {
            "metrics": {"prometheus": [{**PROM, "instance_label": "vmscale_instance"}]},
            "hooks": {"terminate": [{"name": "bye", "url": "http://127.0.0.1:9/x"}]},
            "notify": {
                "webhooks": [{"url": "http://127.0.0.1:9/d"}],
                "file_sd": {"path": str(tmp_path / "sd.json")},
                "original_client": {"enabled": True, "authkey_env": "K"},
            },
        }
    )
    words = describe(cfg)
    assert "'queue_depth' is read from Prometheus at http://127.0.0.1:9090 per instance" in words
    assert "terminate hooks run: bye" in words and "decisions are POSTed to http://127.0.0.1:9/d" in words
    assert f"listed for Prometheus in {tmp_path / 'sd.json'}" in words
    assert "the original client is told on localhost:6000 and :6001" in words
    assert "hooks" not in describe(parse_config({}))
