"""The project's exception tree.

Foreign errors (``libvirt.libvirtError``, ``httpx.HTTPError``, ``subprocess`` and ``OSError``)
are translated once, at the boundary where they happen, into these classes; the controller
only needs to know whether to retry.

    VmscaleError
    ├── ConfigError                  the config file is wrong; carries every problem with its path
    ├── StartupError                 `vmscale up` cannot start as configured on this host (a port is
    │                                taken, a library or daemon is missing); nothing is left running
    ├── ProviderError                something went wrong launching/terminating/observing instances
    │   ├── TemporaryProviderError   retry with back-off (daemon down, timeout, host busy, no capacity)
    │   │   ├── ProviderUnavailableError  the provider's daemon cannot be reached at all (not running)
    │   │   │   └── HostUnreachableError  one libvirt host does not answer (its instances are unknown)
    │   │   └── NoHeadroomError     the host cannot take a running instance's growth now
    │   ├── PermanentProviderError   retrying will not help until a person acts (image missing, bad XML)
    │   └── InstanceNotFoundError    the instance does not exist (terminate treats this as success)
    ├── LoadBalancerError            the balancer refused or is unreachable (temporary by nature)
    ├── StoreError                   the state database cannot be read or written
    ├── NotLeaderError               this controller does not lead its scope (any more): it must not act,
    │                                and a write asked of it belongs to the leader it names
    └── AuthError                    a control-API caller lacks a valid token or scope
"""

from __future__ import annotations


class VmscaleError(Exception):
    """Base of every error vmscale raises on purpose."""


class ConfigError(VmscaleError):
    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(
            f"{source}: {len(self.problems)} problem(s)\n" + "\n".join(f"  {p}" for p in self.problems)
        )


class StartupError(VmscaleError):
    """Start-up cannot succeed as configured; the message says what to change. Exit code 2, so that
    systemd's ``RestartPreventExitStatus=2`` does not restart into the same failure."""


class ProviderError(VmscaleError):
    """Base for provider failures. ``instance`` names the instance concerned, when there is one."""

    def __init__(self, message: str, *, instance: str | None = None) -> None:
        self.instance = instance
        super().__init__(message)


class TemporaryProviderError(ProviderError):
    pass


class ProviderUnavailableError(TemporaryProviderError):
    """Nothing answers at the provider's address (e.g. libvirtd is not running). At run time it is
    retried like any temporary error; at start-up it stops ``vmscale up`` with the fix."""


class HostUnreachableError(ProviderUnavailableError):
    """A libvirt host does not answer (no connection, a lost one, or a call that timed out)."""

    def __init__(self, message: str, *, instance: str | None = None, host: str | None = None) -> None:
        self.host = host
        super().__init__(message, instance=instance)


class NoHeadroomError(TemporaryProviderError):
    """A live resize would take the instance's host past its headroom (vCPU overcommit, free memory).
    Vertical-first stops growing that instance for a while and adds an instance instead, which
    placement may put on a host with room."""


class PermanentProviderError(ProviderError):
    pass


class InstanceNotFoundError(ProviderError):
    pass


class LoadBalancerError(VmscaleError):
    pass


class StoreError(VmscaleError):
    pass


class NotLeaderError(VmscaleError):
    """This controller is (now) a standby: it must not act. Raised by the leadership checks in front of
    every world-changing call, and by a standby asked to write. ``leader_id``/``leader_address`` name
    who leads, as far as this controller knows ("" when nobody does right now)."""

    def __init__(self, message: str, *, leader_id: str = "", leader_address: str = "") -> None:
        self.leader_id = leader_id
        self.leader_address = leader_address
        super().__init__(message)


class AuthError(VmscaleError):
    pass
