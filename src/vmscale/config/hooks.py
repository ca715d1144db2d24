"""Lifecycle hooks (``[hooks]``) and decision webhooks (``[[notify.webhooks]]``).

    [[hooks.launch]]                       # AWS Auto Scaling lifecycle hooks, the same contract:
    name = "register"                      # before the instance enters rotation
    command = ["/usr/local/bin/register-instance"]
    timeout_s = 30
    default_result = "abandon"             # what a timeout (or a hook that cannot run) means

    [[hooks.terminate]]                    # after it leaves rotation, before it is destroyed
    name = "deregister"
    url = "http://127.0.0.1:9000/instance-leaving"

    [[notify.webhooks]]                    # scale decisions, fire and forget
    url = "http://127.0.0.1:9000/scaled"

A command gets the instance in ``VMSCALE_*`` environment variables, a webhook a JSON body. Exit
code 0 or an HTTP 2xx answer means *continue*, any other exit code or status *abandon*; no answer
within ``timeout_s`` (or a command that cannot start, a server that cannot be reached) means
``default_result``. On launch, abandon means the instance never serves and is replaced; on
terminate the instance is destroyed either way (abandon only skips the hooks after it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from vmscale.config.base import Section
from vmscale.config.metrics import http_url, readable_file, require_unique

HookPhase = Literal["launch", "terminate"]
HookResult = Literal["continue", "abandon"]
Direction = Literal["up", "down"]
ALL_DIRECTIONS: tuple[Direction, ...] = ("up", "down")


def executable_problem(program: str) -> str | None:
    """Why ``program`` (argv[0]) cannot be run, or None: a path must be an executable file, a bare
    name must be found on PATH."""
    if os.sep in program:
        path = Path(program).expanduser()
        if not path.is_file():
            return f"{program!r} does not exist"
        if not os.access(path, os.X_OK):
            return f"{program!r} is not executable (chmod +x it)"
        return None
    if shutil.which(program) is None:
        return f"{program!r} is not on PATH; give its full path"
    return None


class LifecycleHookConfig(Section):
    """One hook: a command (argv) or a webhook (POST JSON), run at launch or at terminate."""

    name: str = Field(description="names the hook in events and logs")
    command: list[str] = Field(default_factory=list, description="argv; run without a shell")
    url: str = Field("", description="webhook to POST a JSON body to (instead of a command)")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="longest wait; a command is then killed")
    default_result: HookResult = Field(
        "abandon", description="the result when the hook does not answer in time or cannot run"
    )
    token_file: str = Field("", description="webhook only: file holding a bearer token; empty = none")

    @model_validator(mode="after")
    def _one_action(self) -> LifecycleHookConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError(
                f"hook {self.name!r}: set either command (an argv list) or url, not both or neither"
            )
        if self.command:
            problem = executable_problem(self.command[0])
            if problem:
                raise ValueError(f"hook {self.name!r}: command {problem}")
            if self.token_file:
                raise ValueError(f"hook {self.name!r}: token_file is for webhooks (url); remove it")
        else:
            http_url(self.url, "url", "'http://127.0.0.1:9000/hook'")
            readable_file(self.token_file, "token_file")
        return self


class DecisionWebhookConfig(Section):
    """Where scale decisions are POSTed (fire and forget: bounded queue, retries, never blocks)."""

    url: str
    directions: list[Direction] = Field(
        default_factory=lambda: list(ALL_DIRECTIONS), description="which decisions to send"
    )
    timeout_s: float = Field(2.0, gt=0, le=60, description="per attempt")
    retries: int = Field(3, ge=0, le=10, description="further attempts after a failed one")
    backoff_s: float = Field(0.5, gt=0, le=60, description="wait before the first retry; doubles each time")
    queue_size: int = Field(
        100, ge=1, le=10_000, description="pending notifications kept; the oldest drop first"
    )
    token_file: str = Field("", description="file holding a bearer token; empty = none")

    @model_validator(mode="after")
    def _valid(self) -> DecisionWebhookConfig:
        http_url(self.url, "url", "'http://127.0.0.1:9000/scaled'")
        readable_file(self.token_file, "token_file")
        return self


class HooksConfig(Section):
    """Lifecycle hooks, run in the order written; the first that abandons ends its phase."""

    launch: list[LifecycleHookConfig] = Field(
        default_factory=list, description="after the health check passes, before the instance enters rotation"
    )
    terminate: list[LifecycleHookConfig] = Field(
        default_factory=list,
        description="after the instance leaves rotation (drained), before it is destroyed",
    )

    @model_validator(mode="after")
    def _unique(self) -> HooksConfig:
        require_unique([h.name for h in (*self.launch, *self.terminate)], "hooks")
        return self

    def of(self, phase: HookPhase) -> list[LifecycleHookConfig]:
        return self.launch if phase == "launch" else self.terminate
