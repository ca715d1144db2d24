"""A bounded closed-loop load: ``clients`` threads, each sending one request after the other to one
URL until told to stop (or ``limit_s`` passes, whatever happens). Loopback URLs only."""

from __future__ import annotations

import threading

import httpx


class ClosedLoop:
    def __init__(self, url: str, clients: int, *, limit_s: float, timeout_s: float = 60.0) -> None:
        self.url, self.timeout_s = url, timeout_s
        self.stop = threading.Event()
        self.answers: list[int] = []  # status codes, 0 for a transport error
        self._limit = threading.Timer(limit_s, self.stop.set)
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        # One connection per request: the guest's uvicorn 0.17 can cut a kept-alive one.
        while not self.stop.is_set():
            try:
                code = httpx.get(self.url, timeout=self.timeout_s, trust_env=False).status_code
            except httpx.HTTPError:
                code = 0
            self.answers.append(code)

    def __enter__(self) -> ClosedLoop:
        self._limit.start()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._limit.cancel()
        for t in self._threads:
            t.join(timeout=self.timeout_s + 10)

    @property
    def failed(self) -> int:
        return sum(1 for code in self.answers if code != 200)
