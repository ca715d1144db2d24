"""``[workload]``: settings that mean something only to a particular workload, never to a user's.

vmscale scales any service; its own Fibonacci backend (the demo and benchmark workload) is just
the default one. What only that backend understands lives in ``[workload.fib]``, so a user's
command or cloud image is never handed settings it knows nothing about:

* the ``process`` provider passes them to its default command (``python -m vmscale backend``) and
  to nothing else;
* the ``libvirt`` provider passes them on the kernel command line of the lean image it built
  (``boot = "kernel"``); a cloud image (``boot = "disk"``) gets only its user-data.

Older configs set ``[template] fib_max_n``. :func:`upgrade_legacy` moves such keys to their new
place before validation and returns a note for each, which ``vmscale config check`` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from vmscale.config.base import Section

# (old table, old key) -> (new tables, new key); extend when another workload key moves.
MOVED_KEYS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("template", "fib_max_n"): (("workload", "fib"), "max_n"),
}


class FibWorkloadConfig(Section):
    max_n: int = Field(35, ge=1, le=45, description="the fib backend refuses fib(n) above this n")


class WorkloadConfig(Section):
    fib: FibWorkloadConfig = FibWorkloadConfig()


def upgrade_legacy(data: Any) -> tuple[Any, tuple[str, ...]]:
    """``data`` with legacy keys moved to their new place, and one deprecation note per moved key.

    The old key is removed (nothing reads it any more). Setting both to different values is an
    error: which one was meant cannot be guessed.
    """
    if not isinstance(data, Mapping):
        return data, ()
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    notes: list[str] = []
    for (old_table, old_key), (new_tables, new_key) in MOVED_KEYS.items():
        old = out.get(old_table)
        new_parent = _table(out, new_tables)
        if new_parent is None:
            continue  # the new place is not a table: its own validation reports that
        new_path = ".".join((*new_tables, new_key))
        if isinstance(old, dict) and old_key in old:
            if new_key in new_parent and new_parent[new_key] != old[old_key]:
                raise ValueError(
                    f"{old_table}.{old_key} ({old[old_key]!r}) and {new_path} ({new_parent[new_key]!r}) "
                    f"disagree: set only {new_path} ({old_table}.{old_key} is its old name)"
                )
            new_parent[new_key] = old.pop(old_key)
            notes.append(
                f"{old_table}.{old_key} is deprecated and was read as {new_path}: "
                f"move it to [{'.'.join(new_tables)}] {new_key} = {new_parent[new_key]!r}"
            )
    return out, tuple(notes)


def _table(root: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The (copied, so the caller's data is untouched) nested table at ``path``, made if absent."""
    node = root
    for part in path:
        child = node.get(part, {})
        if not isinstance(child, Mapping):
            return None
        node[part] = child = dict(child)
        node = child
    return node
