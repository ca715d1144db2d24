"""The control API (FastAPI): REST, SSE events, /metrics, the dashboard.

Modules:

* ``app``       — ``create_app(control, metrics=, api_config=, tokens=)`` and ``serve_in_thread``.
* ``routes``    — ``/v1/group``, ``/v1/instances``, ``/v1/group/desired|pause|resume``,
  ``/v1/decisions``, ``/v1/history``, ``/v1/events`` (SSE), ``/metrics``, ``/healthz``.
* ``sse``       — bridges the thread-safe EventBus to asyncio clients without blocking.
* ``auth``/``deps`` — read/write bearer tokens, constant-time checks, the loopback rule.
* ``limits``    — per-client token-bucket rate limit (429 + Retry-After) and body size (413).
* ``dashboard`` — ``GET /``, ``/static/*`` and ``/docs``: a single page (static/index.html,
  app.js, charts.js, style.css) that follows the SSE stream, its charts drawn with uPlot, and
  Swagger UI for the API; both vendored under static/vendor/ (no CDN, no build step), served
  gzip-compressed.

Only ``vmscale.control`` is known of the controller (an import-linter contract enforces it).
"""
