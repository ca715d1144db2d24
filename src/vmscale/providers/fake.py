"""An in-memory provider for tests: instant, controllable, and able to fail at any step.

It keeps the real provider contract (deterministic names, idempotent launch and terminate,
typed errors) so controller tests exercise the same paths a real provider drives. Tests set
``cpu[name]`` to what ``sample`` should report, ``fail_next[op]`` to make the next call of an
operation raise, and can ``vanish(name)`` to simulate a crashed process or domain.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from vmscale.clock import Clock, FakeClock
from vmscale.errors import InstanceNotFoundError, ProviderError, TemporaryProviderError
from vmscale.providers.base import (
    InstanceSpec,
    ProviderInstance,
    ProviderStatus,
    WarmKind,
    instance_port,
    warm_kinds_of,
)


class FakeProvider:
    kind = "fake"
    warm_kinds: frozenset[WarmKind] = warm_kinds_of("fake")

    def __init__(self, clock: Clock | None = None, base_port: int = 20000) -> None:
        self.clock = clock or FakeClock()
        self.base_port = base_port
        self.instances: dict[str, ProviderInstance] = {}
        self.cpu: dict[str, float] = {}
        self.default_cpu = 0.0  # what sample() reports for instances without an entry in ``cpu``
        self.fail_next: dict[str, ProviderError] = {}
        self.fail_always: dict[str, ProviderError] = {}  # until removed: an outage
        self.calls: list[tuple[str, str]] = []
        self.launch_count = 0
        self._lock = threading.Lock()

    def _maybe_fail(self, op: str) -> None:
        err = self.fail_next.pop(op, None) or self.fail_always.get(op)
        if err is not None:
            raise err

    def launch(self, spec: InstanceSpec) -> ProviderInstance:
        with self._lock:
            self.calls.append(("launch", spec.name))
            self._maybe_fail("launch")
            existing = self.instances.get(spec.name)
            if existing is not None:
                return existing
            self.launch_count += 1
            inst = ProviderInstance(
                name=spec.name,
                group=spec.group,
                status=ProviderStatus.RUNNING,
                endpoint=f"http://127.0.0.1:{instance_port(self.base_port, spec.index)}",
                vcpus=spec.vcpus,
                created_at=self.clock.now(),
                details={"fake": "1", "epoch": str(spec.epoch)},
            )
            self.instances[spec.name] = inst
            return inst

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0) -> None:
        with self._lock:
            self.calls.append(("terminate", name))
            self._maybe_fail("terminate")
            self.instances.pop(name, None)
            self.cpu.pop(name, None)

    def list(self, group: str) -> list[ProviderInstance]:
        with self._lock:
            self._maybe_fail("list")
            return [i for i in self.instances.values() if i.group == group]

    def sample(self, names: Sequence[str]) -> dict[str, float]:
        with self._lock:
            self._maybe_fail("sample")
            return {
                n: self.cpu.get(n, self.default_cpu)
                for n in names
                if n in self.instances and self.instances[n].status is ProviderStatus.RUNNING
            }

    def pause(self, name: str, kind: WarmKind = "paused") -> None:
        self._set_status(name, ProviderStatus.PAUSED if kind == "paused" else ProviderStatus.SAVED, "pause")

    def resume(self, name: str) -> None:
        self._set_status(name, ProviderStatus.RUNNING, "resume")

    def _set_status(self, name: str, status: ProviderStatus, op: str) -> None:
        with self._lock:
            self.calls.append((op, name))
            self._maybe_fail(op)
            inst = self.instances.get(name)
            if inst is None:
                raise InstanceNotFoundError(f"{name} does not exist", instance=name)
            self.instances[name] = replace(inst, status=status)

    def vanish(self, name: str) -> None:
        """Simulate a crash: the instance is gone without the controller asking."""
        with self._lock:
            self.instances.pop(name, None)

    def close(self) -> None:
        pass


def temporary(msg: str = "simulated temporary failure") -> TemporaryProviderError:
    return TemporaryProviderError(msg)
