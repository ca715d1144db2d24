"""Test support shared by every tier: polling with a deadline, the controller rigs, fixtures for
real daemons."""
