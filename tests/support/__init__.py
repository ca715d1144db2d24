"""Shared test fixtures that bring up real infrastructure (one module per kind)."""
