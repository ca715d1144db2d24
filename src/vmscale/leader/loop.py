"""Run an elector on its own thread, so that renewing the lease never waits for a slow tick.

    loop = ElectionLoop(elector)
    loop.start()
    ...                       # the controller reads elector.is_leader / elector.lease each tick
    loop.stop(release=True)   # SIGTERM: hand the lease over at once (False: let it expire)

``on_change`` callbacks of the elector run on this thread.
"""

from __future__ import annotations

import logging
import threading

from vmscale.leader.elector import Elector

log = logging.getLogger("vmscale.leader")


class ElectionLoop:
    def __init__(self, elector: Elector, *, name: str = "vmscale-election") -> None:
        self.elector = elector
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.elector.step()
            except Exception:  # a bug must not end elections silently; the next step retries
                log.exception("election step failed")
                wait = self.elector.timing.retry_s
            self._stop.wait(wait)

    def stop(self, *, release: bool = True, timeout_s: float = 10.0) -> None:
        """End the loop; with ``release``, give the lease up so a standby takes over at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if release:
            self.elector.release()
