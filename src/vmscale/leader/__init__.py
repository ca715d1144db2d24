"""Leadership among controllers that share a store: the elector and controller identities.

elector = Elector(store.leases(scope_of(cfg)), controller_id(), clock=SystemClock(),
                  timing=timing_of(cfg.state.lease), address=cfg.api.bind, holder_gone=holder_gone)
every elector.step() seconds: elector.step()
act only while elector.is_leader, and write through store.fenced(elector.lease)
"""

from __future__ import annotations

from vmscale.config.schema import VmscaleConfig
from vmscale.config.state import LeaseConfig
from vmscale.leader.elector import Elector, Role, Timing
from vmscale.leader.identity import controller_id, holder_gone
from vmscale.leader.loop import ElectionLoop

__all__ = [
    "ElectionLoop",
    "Elector",
    "Role",
    "Timing",
    "controller_id",
    "holder_gone",
    "scope_of",
    "timing_of",
]


def scope_of(cfg: VmscaleConfig) -> str:
    """The lease scope of a config: ``[state] cluster``, else its groups' names (``web`` for a
    one-group file, as before; ``web,batch`` with two, so controllers elect together only when
    they run the same groups). One elector covers every group of a process."""
    return cfg.state.cluster or ",".join(gs.group.name for gs in cfg.group_settings())


def timing_of(lease: LeaseConfig) -> Timing:
    return Timing(lease_s=lease.duration_s, renew_deadline_s=lease.renew_deadline_s, retry_s=lease.retry_s)
