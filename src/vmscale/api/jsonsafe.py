"""JSON that a browser can parse: NaN and infinities become ``null``.

The controller's figures can be NaN (no samples yet) or infinite (a division by zero in a
metric). Python's ``json`` would write the non-standard ``NaN`` token, which ``JSON.parse``
rejects, and Starlette's strict encoder would raise (a 500). Sanitising once, here, keeps
both the REST responses and the SSE stream valid.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.responses import JSONResponse


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (dicts, lists, tuples walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(
            finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
