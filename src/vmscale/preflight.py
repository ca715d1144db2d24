"""Checks `vmscale up` makes before it starts anything, each failing with one line that names the
problem and the fix (``StartupError``, exit code 2):

* an address is taken: which program holds the port (pid and name), and which setting to change;
* the provider's library is missing: the pip extra that installs it (from the provider catalog);
* the provider's daemon does not answer: how to start it, with and without systemd.

The control API's socket is *reserved* here (bound, not yet listening) and handed to the server
later: a port taken between check and use is then impossible, and until the API listens a client
gets "connection refused", so nothing talks to it before restart recovery has finished.
"""

from __future__ import annotations

import errno
import socket

from vmscale.config.address import split_host_port
from vmscale.errors import StartupError
from vmscale.provider_catalog import capabilities
from vmscale.providers.proctree import listener_of


def _explain(exc: OSError, host: str, port: int, setting: str) -> str:
    where = f"cannot listen on {host}:{port} ({setting})"
    if exc.errno == errno.EADDRINUSE:
        holder = listener_of(port)
        by = f"{holder[1]} (pid {holder[0]})" if holder else "another program"
        return f"{where}: the port is already in use by {by}; stop it or set {setting} to a free port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: no network interface of this host has the address {host}; set {setting}"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    return f"{where}: {exc.strerror or exc}"


def reserve(bind: str, setting: str) -> socket.socket:
    """Bind (without listening) the address of ``setting``; the caller owns the socket."""
    try:
        host, port = split_host_port(bind, port_zero_ok=True)
    except ValueError as exc:
        raise StartupError(f"{setting} = {bind!r}: {exc}") from None
    if host in ("", "*"):
        host = "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except socket.gaierror as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {bind} ({setting}): unknown host {host!r} ({exc.strerror})"
        ) from None
    except OSError as exc:
        sock.close()
        raise StartupError(_explain(exc, host, port, setting)) from None
    return sock


def check_free(bind: str, setting: str) -> None:
    """Fail now, with the holder's name, if another program listens on ``bind``."""
    reserve(bind, setting).close()


def missing_library(kind: str, exc: ImportError) -> StartupError | None:
    """The install hint when ``exc`` is provider ``kind``'s foreign library missing, else None."""
    caps = capabilities(kind)
    name = exc.name or ""
    if caps.module and (name == caps.module or name.startswith(caps.module + ".")):
        return StartupError(caps.install_hint())
    return None
