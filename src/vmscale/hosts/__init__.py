"""Many libvirt hosts: connections, reachability, facts and the controller's wishes per host.

Modules (``libvirt`` is imported by ``connection`` and ``facts`` only, at the edge):

    watch.py       up / not answering / unreachable from call outcomes, reconnect back-off (pure)
    connection.py  HostConnection: a bounded LibvirtConnection plus the watch, per host
    facts.py       CPUs, memory, running vCPUs and vmscale instances as libvirt reports them
    inventory.py   HostInventory: every host's connection, facts, cordon/drain flags, placement views
"""
