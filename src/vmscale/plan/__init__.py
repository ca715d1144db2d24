"""Pure planning over frozen views: where instances go and which move. No I/O, no clock.

placement.py       filters ("cannot") and scores ("prefer"): spread or bin-pack, with reasons
consolidation.py   after scale-in, which instances to move so the group empties hosts
fencing.py         which copy of an instance name survives when a lost host comes back
"""
