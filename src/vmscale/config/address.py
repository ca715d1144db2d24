"""``HOST:PORT`` settings (the control API's ``bind``), checked when the config is read.

A typo here used to surface only when ``vmscale up`` tried to listen (a traceback, and whatever had
started by then left running); ``vmscale config check`` now names it, with an example of the form.
"""

from __future__ import annotations

import ipaddress
import re

_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
EXAMPLE = "127.0.0.1:8900"


def split_host_port(value: str, *, port_zero_ok: bool = False) -> tuple[str, int]:
    """``'127.0.0.1:8900'`` -> ``('127.0.0.1', 8900)``; ``'[::1]:80'`` -> ``('::1', 80)``.

    ``ValueError`` says what is wrong and shows the expected form. Port 0 (any free port) is
    accepted only where the caller can report the port it got (``port_zero_ok``).
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT (e.g. {EXAMPLE}), got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address (e.g. [::1]:8900)") from None
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets, e.g. [::1]:8900, got {value!r}")
    elif not _HOST_NAME.match(host):
        raise ValueError(f"{host!r} is not a host name or IP address (e.g. {EXAMPLE})")
    if not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number (e.g. {EXAMPLE})")
    port, lowest = int(port_text), 0 if port_zero_ok else 1
    if not lowest <= port <= 65535:
        raise ValueError(f"port {port} is outside {lowest}..65535 (e.g. {EXAMPLE})")
    return host, port
