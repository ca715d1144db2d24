"""Pure planning over frozen values: which instances move and where. No I/O, no clock: values in,
values out, tested by tables.

scale.py           from the instances, the desired count and the pool size: what to resume, launch,
                   drain and stop, and what refills the warm pool
placement.py       filters ("cannot") and scores ("prefer"): spread or bin-pack, with reasons
consolidation.py   after scale-in, which instances to move so the group empties hosts
fencing.py         which copy of an instance name survives when a lost host comes back
"""
