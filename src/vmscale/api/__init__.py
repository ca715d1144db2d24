"""The control API (FastAPI): REST, SSE events, /metrics, the dashboard."""
