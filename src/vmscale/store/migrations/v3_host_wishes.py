"""Version 3: the operators' wishes for each libvirt host (cordoned, draining), so that a controller
restarted in the middle of a drain, or days after a cordon, still knows them.

Keyed by host name alone: a host is one machine whichever group or controller places on it, and a
cordon means "nothing new here" for all of them.
"""

from __future__ import annotations

DESCRIPTION = "host wishes: cordoned and draining hosts"

SQLITE = (
    """CREATE TABLE host_wishes (
        host TEXT PRIMARY KEY,
        cordoned INTEGER NOT NULL DEFAULT 0,
        draining INTEGER NOT NULL DEFAULT 0,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL)""",
)

POSTGRES = (
    """CREATE TABLE host_wishes (
        host TEXT PRIMARY KEY,
        cordoned BOOLEAN NOT NULL DEFAULT FALSE,
        draining BOOLEAN NOT NULL DEFAULT FALSE,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        updated_at DOUBLE PRECISION NOT NULL)""",
)
