"""Who a backend is: a name fixed at start, or one the provider pushes after a snapshot restore.

Why pushed: a snapshot clone is the memory of one booted "golden" VM restored under another
domain name. Everything the guest learned at boot (its kernel command line, its hostname, the
backend's ``--name``) is the golden's. The golden's backend is therefore started *without* a name
(``--identity push``): until the provider tells it who it is, it answers every request with 503,
so it can never serve under the golden's name, and its health check fails, so no balancer puts it
in rotation. Right after restoring a clone the provider sends ``PUT /_vmscale/identity`` with the
clone's name, the host's clock (the restored guest's clock is the golden's, minutes or days old)
and a token that was generated with the golden and is known only to the provider; the backend
takes the name, sets the guest's clock and hostname (inside a VM, where it runs as root), and
serves. The same name again is accepted (a retried launch); another name is refused (409).

Only the standard library is imported: this module also runs inside the Debian 12 guest.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
log = logging.getLogger("vmscale.backend")


class IdentityRefused(Exception):
    """The push cannot be taken: ``status`` is the HTTP status to answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Identity:
    """The backend's name; ``None`` while a pushed identity has not arrived yet."""

    name: str | None
    token: str = ""
    set_system: bool = False  # also set the hostname and the clock (a guest, running as root)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def pushable(self) -> bool:
        return bool(self.token)

    def assign(self, name: object, token: object, now: object = None) -> str:
        """Take the pushed name (idempotent for the same name). Raises ``IdentityRefused``."""
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            raise IdentityRefused(403, "wrong or missing identity token")
        if not isinstance(name, str) or not NAME.match(name):
            raise IdentityRefused(422, "name must be 1-100 letters, digits, '-', '_' or '.'")
        with self._lock:
            if self.name is not None and self.name != name:
                raise IdentityRefused(409, f"this instance is already {self.name}")
            first = self.name is None
            self.name = name
        if first and self.set_system:
            self._set_system(name, now)
        log.info("identity: %s", name)
        return name

    @staticmethod
    def _set_system(name: str, now: object) -> None:
        with contextlib.suppress(OSError, AttributeError):
            socket.sethostname(name)
        # Only forward: a clock that jumps back would confuse anything timing itself.
        if isinstance(now, int | float) and not isinstance(now, bool) and now > time.time():
            with contextlib.suppress(OSError, AttributeError):
                time.clock_settime(time.CLOCK_REALTIME, float(now))
