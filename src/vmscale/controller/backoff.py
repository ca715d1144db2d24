"""One back-off rule for every provider call that can fail over and over: launch, list, sample and
terminate alike.

``Backoff`` is a value: ``failed`` and ``succeeded`` return the next value, so whoever owns a
back-off (the reconciler for launch, list and sample; each instance for its terminate) holds it in
one attribute and nobody else can change it behind its back. Times are on the monotonic clock: a
wall-clock step (NTP, ``date -s``) must neither cut a wait short nor stretch it by an hour.

The waits after consecutive failures are ``initial_s``, 2×, 4×, … capped at ``max_s``; a permanent
error (a person must act: an image missing, a bad config) waits ``max_s`` at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float
    max_s: float
    failures: int = 0
    next_at: float = 0.0  # monotonic seconds; nothing is retried before it
    delay_s: float = 0.0  # the wait the last failure started

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def failed(self, now: float, *, permanent: bool = False) -> Backoff:
        delay = self.max_s if permanent else min(self.max_s, self.initial_s * 2**self.failures)
        return replace(self, failures=self.failures + 1, next_at=now + delay, delay_s=float(delay))

    def succeeded(self) -> Backoff:
        if self.failures == 0 and self.next_at == 0.0:
            return self
        return replace(self, failures=0, next_at=0.0, delay_s=0.0)
