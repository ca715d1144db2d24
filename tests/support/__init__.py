"""Reusable test machinery that starts real things (a PostgreSQL server, elector processes), for
any tier and for the fault-injection tests. Fixtures here are registered in ``tests/conftest.py``."""
