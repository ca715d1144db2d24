"""The lease rules, as pure functions over the scope's lease row and the store's ``now``.

Every backend (SQLite, PostgreSQL, the in-memory one the elector's unit tests use) reads the row
under its write lock, asks these functions what the row becomes, and writes that back in the same
transaction; so the rules exist once and every backend follows them exactly.

    acquire   free (never held, released, expired, ours, or a dead holder's) -> next epoch; else None
    renew     still current (same holder, same epoch)                         -> later expiry; else Fenced
    release   still current                                                   -> holder cleared, expired now
    check     a fenced write goes ahead only while its lease is current (same holder and epoch)

A lease that expired but that nobody has taken since is still *current*: its holder may renew
it, and its fenced writes still pass, because no other controller can have acted in between
(acting needs the lease, and taking it bumps the epoch).
"""

from __future__ import annotations

from dataclasses import replace

from vmscale.store.base import FencedError, LeaderInfo, Lease


def acquire(
    row: Lease | None,
    scope: str,
    holder: str,
    ttl_s: float,
    now: float,
    *,
    address: str = "",
    replacing: str = "",
) -> Lease | None:
    """The row after ``holder`` acquires the scope, or ``None`` when someone else holds it."""
    if ttl_s <= 0:
        raise ValueError(f"a lease needs a positive duration, got {ttl_s}")
    if row is not None and not _free_for(row, holder, now, replacing):
        return None
    epoch = 1 if row is None else row.epoch + 1
    return Lease(scope, holder, epoch, address, now, now, now + ttl_s)


def _free_for(row: Lease, holder: str, now: float, replacing: str) -> bool:
    return (
        not row.holder
        or row.expires_at <= now
        or row.holder == holder  # ours already: re-acquiring starts a new term (the old epoch's writes stop)
        or (bool(replacing) and row.holder == replacing)
    )


def check(row: Lease | None, lease: Lease) -> None:
    """Raise ``FencedError`` unless ``lease`` is the scope's current lease."""
    if row is None or row.epoch != lease.epoch or row.holder != lease.holder:
        now_held = "nobody holds it now" if row is None or not row.holder else f"{row.holder!r} holds it"
        epoch = "" if row is None else f" at epoch {row.epoch}"
        raise FencedError(
            f"lease of {lease.scope!r} at epoch {lease.epoch} is no longer current ({now_held}{epoch}): "
            "this controller must stop acting and stand by"
        )


def renew(row: Lease | None, lease: Lease, ttl_s: float, now: float) -> Lease:
    """The row after renewing ``lease``; ``FencedError`` if it is no longer current."""
    check(row, lease)
    assert row is not None
    return replace(row, address=lease.address, renewed_at=now, expires_at=now + ttl_s)


def release(row: Lease | None, lease: Lease, now: float) -> Lease | None:
    """The row after ``lease`` is released, or ``None`` if it was no longer current."""
    try:
        check(row, lease)
    except FencedError:
        return None
    assert row is not None
    return replace(row, holder="", address="", renewed_at=now, expires_at=now)


def info(row: Lease, now: float) -> LeaderInfo:
    """Who leads according to ``row``, seen at store time ``now``."""
    return LeaderInfo(
        scope=row.scope,
        holder=row.holder,
        epoch=row.epoch,
        address=row.address,
        age_s=now - row.renewed_at,
        expires_in_s=row.expires_at - now,
    )
