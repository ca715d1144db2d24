"""Test support shared by every tier: polling with a deadline, the controller rigs, and fixtures that
start real things (a PostgreSQL server, elector processes). Fixtures are registered in
``tests/conftest.py``."""
