"""What a process instance runs: its argv, its environment, the start-up shim, and its log.

Kept apart from ``process.py`` (which owns the lifecycle) because this is the part a user
configures: ``provider.process.command`` / ``env`` / ``cwd``, or, left empty, vmscale's own fib
backend with the ``[workload.fib]`` settings.

The environment an instance gets is vmscale's own, minus vmscale's secrets (the control API's
tokens must never reach a workload), plus ``PYTHONUNBUFFERED=1`` (a Python service's output
reaches its log as it happens; ``env`` can override it), plus the configured ``env``, plus the
marker ``VMSCALE_INSTANCE=<group>/<name>`` that ties every process of the instance to it (see
``proctree``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmscale.config.command import MARKER_ENV, expand
from vmscale.config.process import ProcessProviderConfig
from vmscale.errors import TemporaryProviderError
from vmscale.providers.base import InstanceSpec
from vmscale.providers.proctree import port_open

# Every instance starts as this ``sh``: it waits for "go" on stdin, sent once the provider has
# written the instance's record (and put the pid in its cgroup), then becomes the command (same
# pid). If the provider dies first the pipe closes, ``read`` fails and nothing starts: there is
# never a running instance without a record. ``exec`` failing (a program that vanished since the
# config was checked) ends the shim with status 126/127 and sh's message in the log.
SHIM = 'read -r go && [ "$go" = go ] && exec "$@" </dev/null'
SHIM_NAME = "vmscale-shim"
LAUNCH_BANNER = "--- vmscale: launching"
SECRET_ENV = ("VMSCALE_TOKENS", "VMSCALE_TOKEN")
TAIL_LINES = 12
TAIL_CHARS = 1500


def marker(group: str, name: str) -> str:
    return f"{group}/{name}"


def template_values(spec: InstanceSpec, port: int, host: str) -> dict[str, object]:
    return {"port": port, "name": spec.name, "index": spec.index, "vcpus": spec.vcpus, "host": host}


def fib_backend_argv(
    python: str, host: str, port: int, spec: InstanceSpec, fib_max_n: int, workers_file: Path
) -> list[str]:
    """The default command: vmscale's fib backend. ``spec.workload_args`` may override its
    ``fib_max_n`` and ``workers`` (one per vCPU unless told otherwise, e.g. to show that the cgroup
    quota, not the worker count, is the limit); a user's command never sees workload_args. The
    workers file is how a live resize tells it its new worker count (with SIGHUP)."""
    max_n = spec.workload_args.get("fib_max_n", str(fib_max_n))
    workers = spec.workload_args.get("workers", str(spec.vcpus))
    return [
        python, "-m", "vmscale", "backend", "--host", host, "--port", str(port),
        "--name", spec.name, "--workers", str(workers), "--fib-max-n", str(max_n),
        "--workers-file", str(workers_file),
    ]  # fmt: skip


def instance_argv(
    config: ProcessProviderConfig,
    spec: InstanceSpec,
    port: int,
    *,
    python: str,
    fib_max_n: int,
    workers_file: Path,
) -> list[str]:
    if not config.command:
        return fib_backend_argv(python, config.host, port, spec, fib_max_n, workers_file)
    return expand(config.command, template_values(spec, port, config.host))


def instance_env(
    config: ProcessProviderConfig, spec: InstanceSpec, port: int, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in SECRET_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    values = template_values(spec, port, config.host)
    env.update({key: value.format(**values) for key, value in config.env.items()})
    env[MARKER_ENV] = marker(spec.group, spec.name)
    return env


def shim_argv(command: list[str]) -> list[str]:
    return ["/bin/sh", "-c", SHIM, SHIM_NAME, *command]


def log_tail(path: Path, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last lines the current launch wrote to ``path`` (after the last launch banner)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    start = text.rfind(LAUNCH_BANNER)
    if start >= 0:
        text = text[start:].split("\n", 1)[1] if "\n" in text[start:] else ""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail[-chars:]


def exit_description(returncode: int | None) -> str:
    if returncode is None:
        return "is gone"
    if returncode < 0:
        return f"was killed by signal {-returncode}"
    hint = {126: " (not executable)", 127: " (program not found)"}.get(returncode, "")
    return f"exited with status {returncode}{hint}"


START_POLL_S = 0.05  # how often the start check looks at a new process


def release_shim(name: str, child: subprocess.Popen[bytes], rec: dict[str, Any]) -> None:
    """Tell the waiting shim to ``exec`` the command (it waits so that the provider can record the
    instance, and put it in its cgroup, before anything runs)."""
    assert child.stdin is not None
    try:
        child.stdin.write(b"go\n")
        child.stdin.close()
    except OSError as exc:
        raise TemporaryProviderError(
            f"{name} exited before it started; see {rec['log']}", instance=name
        ) from exc


def exited_at_once(child: subprocess.Popen[bytes], host: str, port: int, within_s: float) -> bool:
    """Whether the command exited within ``within_s`` of its start (a typo in an argument, a missing
    module, a port it cannot bind). Answers early once the port accepts connections."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        if port_open(host, port):
            return False
        time.sleep(START_POLL_S)
    return child.poll() is not None
