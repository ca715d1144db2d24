"""An in-memory provider for tests: instant, controllable, and able to fail at any step.

It keeps the real provider contract (deterministic names, idempotent launch and terminate,
typed errors) so controller tests exercise the same paths a real provider drives. Tests set
``cpu[name]`` to what ``sample`` should report, ``fail_next[op]`` to make the next call of an
operation raise, and can ``vanish(name)`` to simulate a crashed process or domain. It plays every
optional role: a warm pool, ``resize`` (with ``can_shrink`` settable, and the same errors as the
real providers) and ``prepare``/``drop_goldens`` (recorded in ``calls``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from vmscale.clock import Clock, FakeClock
from vmscale.errors import (
    InstanceNotFoundError,
    PermanentProviderError,
    ProviderError,
    TemporaryProviderError,
)
from vmscale.providers.base import (
    GoldenSnapshot,
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

    can_shrink = True  # set False to play libvirt under TCG (no live vCPU removal)
    clones = True  # set False to play a provider that boots every instance (nothing to prepare)
    golden: GoldenSnapshot | None = None  # what ``prepare`` answers (set one to play a made golden)
    max_vcpus = 64  # the largest size ``resize`` accepts (a domain's room to grow)

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
        self._baseline: set[str] = set()  # resized since the last sample: it returns nothing for them
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
            fresh, self._baseline = self._baseline, set()
            return {
                n: self.cpu.get(n, self.default_cpu)
                for n in names
                if n in self.instances
                and self.instances[n].status is ProviderStatus.RUNNING
                and n not in fresh
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

    def resize(self, name: str, vcpus: int) -> None:
        with self._lock:
            self.calls.append(("resize", f"{name}:{vcpus}"))
            self._maybe_fail("resize")
            inst = self.instances.get(name)
            if inst is None or inst.status is not ProviderStatus.RUNNING:
                raise InstanceNotFoundError(f"no running instance named {name}", instance=name)
            if not 1 <= vcpus <= self.max_vcpus:
                raise PermanentProviderError(
                    f"cannot resize {name} to {vcpus} vCPUs: between 1 and {self.max_vcpus}", instance=name
                )
            if vcpus < inst.vcpus and not self.can_shrink:
                raise PermanentProviderError(f"cannot shrink {name} live", instance=name)
            self.instances[name] = replace(inst, vcpus=vcpus)
            self._baseline.add(name)  # like the real ones: the next sample is only a baseline

    def restores_clones(self) -> bool:
        return self.clones

    def prepare(self, spec: InstanceSpec) -> GoldenSnapshot | None:
        with self._lock:
            self.calls.append(("prepare", spec.group))
            self._maybe_fail("prepare")
            return self.golden

    def drop_goldens(self, group: str) -> None:
        with self._lock:
            self.calls.append(("drop_goldens", group))

    def vanish(self, name: str) -> None:
        """Simulate a crash: the instance is gone without the controller asking."""
        with self._lock:
            self.instances.pop(name, None)

    def close(self) -> None:
        pass


def temporary(msg: str = "simulated temporary failure") -> TemporaryProviderError:
    return TemporaryProviderError(msg)
