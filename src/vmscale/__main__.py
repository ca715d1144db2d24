"""`python -m vmscale ...` is the same as the `vmscale` command (used to spawn backends)."""

from vmscale.cli import main

main()
