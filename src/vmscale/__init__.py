"""vmscale: autoscale a service across virtual machines (libvirt/QEMU) or local processes.

The package is layered (see README, "Architecture"):

    model, errors, clock            shared vocabulary, no dependencies
    config                          the config file's schema, validated once
    policy/  simulate               pure decisions and their offline replay
    providers/  lb/  store          the edges: what runs instances, what routes traffic, what remembers
    controller                      the reconcile loop that ties them together
    api/  cli/  report  workload/   what people and clients touch
"""

__version__ = "0.1.0"
