"""Lifecycle hooks, the way AWS Auto Scaling lifecycle hooks work, run off the controller's thread.

    hooks = LifecycleHooks(cfg.hooks, publish=bus_publisher(events))
    fut = hooks.submit("launch", HookSubject("web", "web-3", "http://127.0.0.1:18103"))
    ...                                    # later ticks: the controller never waits
    if fut.done():
        phase = fut.result()               # PhaseResult: phase.result is "continue" or "abandon"

A phase runs its hooks one after the other, in the order configured; each is a command (exit code
0 = continue) or a JSON POST (HTTP 2xx = continue). Another code or status is *abandon* and ends
the phase; a hook that does not finish within its ``timeout_s`` (a command's process group is then
killed), or cannot run at all, counts as its ``default_result``. Every call is published as a
``HookCalled`` event with its outcome and duration, the moment it ends.

What the results mean is the controller's business (see the README): on launch, *abandon* keeps
the instance out of rotation and it is replaced; on terminate, the instance is destroyed either
way.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import httpx

from vmscale.clock import Clock, SystemClock
from vmscale.config.hooks import HookPhase, HookResult, HooksConfig, LifecycleHookConfig
from vmscale.event_kinds import FieldsEvent, Publish, discard
from vmscale.hooks.command import RunningCommands, run_command
from vmscale.hooks.http import Answer, Outcome, http_client, post_json


@dataclass(frozen=True, slots=True)
class HookSubject:
    """The instance a phase is about. ``host`` is where it runs ("local" for processes)."""

    group: str
    instance: str
    endpoint: str = ""
    host: str = "local"

    @property
    def address(self) -> str:
        return urlsplit(self.endpoint).netloc if self.endpoint else ""

    def env(self, hook: str, phase: HookPhase) -> dict[str, str]:
        return {
            "VMSCALE_HOOK": hook,
            "VMSCALE_PHASE": phase,
            "VMSCALE_GROUP": self.group,
            "VMSCALE_INSTANCE": self.instance,
            "VMSCALE_ENDPOINT": self.endpoint,
            "VMSCALE_ADDRESS": self.address,
            "VMSCALE_HOST": self.host,
        }


@dataclass(frozen=True, slots=True)
class HookCalled(FieldsEvent):
    """One hook call and what came of it."""

    TYPE: ClassVar[str] = "hook"
    hook: str
    phase: HookPhase
    group: str
    instance: str
    action: str  # "command" or "webhook"
    outcome: Outcome
    result: HookResult
    duration_s: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PhaseResult:
    phase: HookPhase
    instance: str
    result: HookResult
    calls: tuple[HookCalled, ...] = ()

    @property
    def reason(self) -> str:
        """In words, for the instance's transition: which hook decided, and why."""
        if not self.calls:
            return f"no {self.phase} hooks"
        last = self.calls[-1]
        verdict = "abandoned" if self.result == "abandon" else "passed"
        how = last.outcome.value.replace("_", " ")
        return f"{self.phase} hook {last.hook!r} {verdict} ({how}: {last.detail})"


def result_of(outcome: Outcome, default: HookResult) -> HookResult:
    if outcome is Outcome.SUCCEEDED:
        return "continue"
    if outcome is Outcome.REJECTED:
        return "abandon"
    return default


class LifecycleHooks:
    """Runs the configured hooks of a phase on its own small pool, so that a hook taking minutes
    never occupies the workers that launch and terminate instances."""

    def __init__(
        self,
        cfg: HooksConfig,
        *,
        executor: Executor | None = None,
        publish: Publish = discard,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.cfg = cfg
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="vmscale-hook")
        self._publish = publish
        self._clock = clock or SystemClock()
        self._running = RunningCommands()
        timeouts = [h.timeout_s for h in (*cfg.launch, *cfg.terminate)] or [1.0]
        self._client = http_client(max(timeouts), transport)

    def has(self, phase: HookPhase) -> bool:
        return bool(self.cfg.of(phase))

    def submit(self, phase: HookPhase, subject: HookSubject) -> Future[PhaseResult]:
        """Start the phase's hooks for ``subject``; returns at once. With no hooks for the phase,
        the future is already done and says continue."""
        if not self.has(phase):
            done: Future[PhaseResult] = Future()
            done.set_result(PhaseResult(phase, subject.instance, "continue"))
            return done
        return self._executor.submit(self.run_phase, phase, subject)

    def run_phase(self, phase: HookPhase, subject: HookSubject) -> PhaseResult:
        """The phase's hooks in order until one abandons (blocking; ``submit`` runs it off-thread)."""
        calls: list[HookCalled] = []
        result: HookResult = "continue"
        for hook in self.cfg.of(phase):
            call = self._call(hook, phase, subject)
            calls.append(call)
            self._publish(call)
            result = call.result
            if result == "abandon":
                break
        return PhaseResult(phase, subject.instance, result, tuple(calls))

    def close(self) -> None:
        """Stop: running hook commands are killed, queued phases dropped. Does not wait."""
        self._running.kill_all()
        if self._owns_executor and isinstance(self._executor, ThreadPoolExecutor):
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _call(self, hook: LifecycleHookConfig, phase: HookPhase, subject: HookSubject) -> HookCalled:
        start = self._clock.monotonic()
        if hook.command:
            action = "command"
            answer = run_command(hook.command, subject.env(hook.name, phase), hook.timeout_s, self._running)
        else:
            action = "webhook"
            answer = self._post(hook, phase, subject)
        return HookCalled(
            hook=hook.name,
            phase=phase,
            group=subject.group,
            instance=subject.instance,
            action=action,
            outcome=answer.outcome,
            result=result_of(answer.outcome, hook.default_result),
            duration_s=round(self._clock.monotonic() - start, 4),
            detail=answer.detail,
        )

    def _post(self, hook: LifecycleHookConfig, phase: HookPhase, subject: HookSubject) -> Answer:
        body: Mapping[str, object] = {
            "hook": hook.name,
            "phase": phase,
            "group": subject.group,
            "instance": subject.instance,
            "endpoint": subject.endpoint,
            "address": subject.address,
            "host": subject.host,
            "time": self._clock.now(),
        }
        return post_json(
            self._client, hook.url, dict(body), token_file=hook.token_file, timeout_s=hook.timeout_s
        )
