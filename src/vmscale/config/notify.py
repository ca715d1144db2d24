"""Telling the outside world what runs and what was decided (``[notify]``): decision webhooks, a
Prometheus ``file_sd`` file and the original student client's socket notifier.

    [[notify.webhooks]]
    url = "http://127.0.0.1:9000/scaled"

    [notify.file_sd]
    path = "/etc/prometheus/targets/vmscale-web.json"   # Prometheus: file_sd_configs: [{files: [...]}]
    labels = { env = "prod" }

    [notify.original_client]
    enabled = true
    authkey_env = "ORIGINAL_AUTHKEY"      # or authkey_file; never written in the config
    launched = ["VM Launched"]            # what the original sent; e.g. ["VM Launched", "{url}"]
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, model_validator

from vmscale.config.base import Section
from vmscale.config.hooks import DecisionWebhookConfig
from vmscale.config.metrics import LABEL_RE, readable_file

LAUNCHING_FIELDS = ("group", "desired", "current")
LAUNCHED_FIELDS = ("group", "name", "url", "address")


class FileSdConfig(Section):
    """The group's ready instances as a Prometheus file_sd JSON file, rewritten when they change."""

    path: str = Field("", description="where to write it; empty = no file")
    labels: dict[str, str] = Field(
        default_factory=dict, description="extra labels on every target (beside vmscale_group/instance/host)"
    )
    metrics_path: str = Field("", description="the targets' metrics path; empty = Prometheus' (/metrics)")

    @model_validator(mode="after")
    def _valid(self) -> FileSdConfig:
        for key in self.labels:
            if not LABEL_RE.match(key) or key.startswith("__"):
                raise ValueError(
                    f"labels: {key!r} is not a usable label name "
                    "(letters, digits, '_'; not starting with '__')"
                )
        if self.metrics_path and not self.metrics_path.startswith("/"):
            raise ValueError(f"metrics_path {self.metrics_path!r} must start with '/'")
        return self


def _placeholder_problem(template: str, allowed: tuple[str, ...]) -> str | None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"{template!r}: {exc} (write a literal brace as {{{{ or }}}})"
    for name in fields:
        if name not in allowed:
            known = ", ".join("{" + a + "}" for a in allowed)
            return f"{template!r}: unknown placeholder {{{name}}}; use {known}"
    return None


class OriginalClientConfig(Section):
    """The seed experiment's client listens on two localhost ports with an authkey and learns of the
    new VM from one message on each: "VM Launching" (the overload was seen, on 6000) and
    "VM Launched" (the new VM serves, on 6001). vmscale connects to each as a
    ``multiprocessing.connection.Client`` and sends the messages at those moments."""

    enabled: bool = False
    host: str = Field("localhost", description="where the client listens")
    launching_port: int = Field(6000, ge=1, le=65535, description="told when a scale-up is decided")
    launched_port: int = Field(6001, ge=1, le=65535, description="told when the new instance serves")
    launching: list[str] = Field(
        default_factory=lambda: ["VM Launching"],
        description="messages sent in order on the launching connection; "
        "placeholders {group} {desired} {current}",
    )
    launched: list[str] = Field(
        default_factory=lambda: ["VM Launched"],
        description="messages sent in order on the launched connection; placeholders {group} {name} {url} "
        "{address}",
    )
    send_as: Literal["object", "bytes"] = Field(
        "object", description="'object': conn.send(str), as the original; 'bytes': conn.send_bytes(utf-8)"
    )
    authkey_file: str = Field("", description="file holding the listeners' authkey (its first line)")
    authkey_env: str = Field("", description="or: environment variable holding it")
    timeout_s: float = Field(
        5.0, gt=0, le=120, description="per attempt: TCP connect and the authkey handshake"
    )
    retry_for_s: float = Field(
        60.0, ge=0, le=3600, description="keep retrying a listener that refuses connections this long"
    )
    every_scale_up: bool = Field(
        False,
        description="the original's listeners accept one connection each, so only the first scale-up is "
        "announced; true announces every one",
    )

    @model_validator(mode="after")
    def _valid(self) -> OriginalClientConfig:
        if not self.enabled:
            return self
        if bool(self.authkey_file) == bool(self.authkey_env):
            raise ValueError(
                "set exactly one of authkey_file or authkey_env (the listeners' authkey; it is never "
                "written in the config)"
            )
        readable_file(self.authkey_file, "authkey_file")
        if self.launching_port == self.launched_port:
            raise ValueError(
                f"launching_port and launched_port are both {self.launched_port}; they must differ"
            )
        if not self.launching or not self.launched:
            raise ValueError("launching and launched each need at least one message")
        for templates, allowed in ((self.launching, LAUNCHING_FIELDS), (self.launched, LAUNCHED_FIELDS)):
            for template in templates:
                problem = _placeholder_problem(template, allowed)
                if problem:
                    raise ValueError(problem)
        return self


class NotifyConfig(Section):
    webhooks: list[DecisionWebhookConfig] = Field(default_factory=list, description="scale decisions, POSTed")
    file_sd: FileSdConfig = FileSdConfig()
    original_client: OriginalClientConfig = OriginalClientConfig()
