"""A stand-in controller process for election tests: an ``Elector`` over a real store, and, while
it leads, one fenced write (a decision) per step, the way a controller's tick writes.

    python -m tests.support.elector_proc --url URL --scope S --events FILE [--lease 2,1.5,0.25]
        [--remote]        behave as if on another machine: never judge a holder dead by its pid
        [--freeze-file F] when F appears, stop itself (SIGSTOP) between two steps, outside any
                          transaction; the test sends SIGCONT
        [--probe-stale]   on losing leadership, try ONE write with the old lease and record
                          whether the store refused it (proof of fencing, for the test)

Every event is a JSON line in FILE: {"t": wall, "m": monotonic, "pid", "event", ...}; events are
"started", "role" (from, to, epoch), "wrote" (epoch, n), "write-error", "probe" (refused: bool).
SIGTERM releases the lease (graceful hand-over) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from vmscale.clock import SystemClock
from vmscale.leader import Elector, Role, Timing, controller_id, holder_gone
from vmscale.store import FencedError, Lease, StoreError, open_store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--scope", required=True)
    ap.add_argument("--events", required=True, type=Path)
    ap.add_argument("--lease", default="2,1.5,0.25", help="lease_s,renew_deadline_s,retry_s")
    ap.add_argument("--remote", action="store_true")
    ap.add_argument("--freeze-file", type=Path)
    ap.add_argument("--probe-stale", action="store_true")
    args = ap.parse_args()

    out = args.events.open("a", buffering=1)

    def emit(event: str, **data: Any) -> None:
        out.write(
            json.dumps({"t": time.time(), "m": time.monotonic(), "pid": os.getpid(), "event": event, **data})
        )
        out.write("\n")

    store = open_store(args.url, connect_timeout_s=2.0, statement_timeout_s=1.0)
    lease_s, renew_s, retry_s = (float(x) for x in args.lease.split(","))
    held: list[Lease] = []

    def on_change(old: Role, new: Role, lease: Lease | None, why: str) -> None:
        emit("role", old=old.value, new=new.value, epoch=lease.epoch if lease else None, why=why)
        if lease is not None:
            held[:] = [lease]
        elif old is Role.LEADER and args.probe_stale and held:
            try:
                store.fenced(held[0]).append_decision(args.scope, time.time(), "probe", {"probe": True})
                emit("probe", refused=False, epoch=held[0].epoch)
            except FencedError:
                emit("probe", refused=True, epoch=held[0].epoch)

    me = controller_id()
    elector = Elector(
        store.leases(args.scope),
        me,
        clock=SystemClock(),
        timing=Timing(lease_s, renew_s, retry_s),
        address=f"pid-{os.getpid()}",
        holder_gone=(lambda _h: False) if args.remote else holder_gone,
        on_change=on_change,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emit("started", holder=me)
    n = 0
    while not stop.is_set():
        wait = elector.step()
        if elector.is_leader and elector.lease is not None:
            n += 1
            try:
                store.fenced(elector.lease).append_decision(
                    args.scope, time.time(), me, {"n": n, "epoch": elector.lease.epoch}
                )
                emit("wrote", epoch=elector.lease.epoch, n=n)
            except StoreError as exc:
                emit("write-error", error=str(exc), fenced=isinstance(exc, FencedError))
        if args.freeze_file is not None and args.freeze_file.exists():
            args.freeze_file.unlink()
            emit("freezing")
            os.kill(os.getpid(), signal.SIGSTOP)
            emit("woke", is_leader=elector.is_leader)
        stop.wait(min(wait, retry_s))
    elector.release()
    emit("released")
    store.close()


if __name__ == "__main__":
    main()


# -- the test side ------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


class ElectorProcess:
    """One ``elector_proc`` child: started, read, signalled and stopped by its pid."""

    def __init__(self, url: str, scope: str, events: Path, *extra: str) -> None:
        self.events_path = events
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.elector_proc",
                "--url",
                url,
                "--scope",
                scope,
                "--events",
                str(events),
                *extra,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=(events.with_suffix(".stderr")).open("w"),
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Events so far (a line cut by a kill is skipped)."""
        found = []
        try:
            lines = self.events_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if kind is None or event["event"] == kind:
                found.append(event)
        return found

    def became(self, role: str) -> list[dict[str, Any]]:
        return [e for e in self.events("role") if e["new"] == role]

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        """End it whatever state it is in (a stopped process needs SIGCONT to die of SIGTERM)."""
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)  # SIGKILL ends even a stopped process
        self.proc.wait(timeout=30)
