"""SQLite state store."""
