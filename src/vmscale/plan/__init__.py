"""Pure planning: which instances to resume, launch, drain or stop (``scale``), and, with many
hosts, where (placement). No I/O, no clock: values in, values out, tested by tables."""
