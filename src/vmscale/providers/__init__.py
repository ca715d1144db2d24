"""Providers run instances: local processes (the embedded default), libvirt domains, or an in-memory fake."""
