"""systemd's readiness protocol (sd_notify), for ``Type=notify`` units.

systemd passes a Unix datagram socket in ``$NOTIFY_SOCKET``; the service sends ``READY=1`` once it
really serves, ``STOPPING=1`` when it begins to stop, and ``STATUS=...`` lines that
``systemctl status`` shows. A path starting with ``@`` is an abstract socket. Outside systemd the
variable is unset and every call is a no-op, so callers need no condition.

A few lines over the standard library rather than a dependency: the protocol is one datagram of
newline-separated ``KEY=VALUE`` pairs (see sd_notify(3)).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 1.0


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``, ``"STATUS=serving"``) if run by systemd; True if sent.

    Never raises: a service must not fail because its supervisor's socket went away.
    """
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.sendto("\n".join(fields).encode(), address)
    except OSError as exc:
        log.warning("could not notify systemd at %s: %s", address.replace("\0", "@"), exc)
        return False
    return True
