"""A quick look at a PromQL query for mistakes that are certain, made at config check time.

This is not a PromQL parser: the Prometheus server's parser is the final word, and a query it
rejects gives a clear error (and "no data") when the source runs. What is caught here are the
slips a person makes in a TOML string and would otherwise learn about only at run time:

* an empty query;
* brackets that do not pair up: ``(`` ``[`` ``{`` opened and never closed, or closed by the
  wrong kind, or closing nothing;
* a string literal (``"..."``, ``'...'`` or a back-quoted raw string) that is never closed;
* a query that ends with a binary operator (``... / ``), where something is clearly missing.

Brackets inside string literals and ``#`` comments are ignored, as PromQL does. Every problem
names the column and says how to fix it.
"""

from __future__ import annotations

_PAIRS = {")": "(", "]": "[", "}": "{"}
_TRAILING_OPERATORS = ("+", "-", "*", "/", "%", "^", "==", "!=", ">=", "<=", ">", "<", "=", "=~", "!~")
_TRAILING_WORDS = ("and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool")


def promql_problem(query: str) -> str | None:
    """The first certain mistake in ``query`` in words, or None when nothing is obviously wrong."""
    if not query.strip():
        return "query is empty; write a PromQL expression, e.g. 'avg(rate(http_requests_total[1m]))'"
    code, problem = _strip_strings_and_comments(query)
    if problem:
        return problem
    problem = _bracket_problem(code)
    if problem:
        return problem
    tail = code.rstrip()
    for op in sorted(_TRAILING_OPERATORS, key=len, reverse=True):
        if tail.endswith(op):
            return f"query ends with the operator {op!r}: the expression after it is missing"
    last_word = tail.rsplit(None, 1)[-1] if tail.split() else ""
    if last_word.lower() in _TRAILING_WORDS:
        return f"query ends with {last_word!r}: the expression after it is missing"
    return None


def _strip_strings_and_comments(query: str) -> tuple[str, str | None]:
    """``query`` with string literals and comments blanked out (same length, so columns hold)."""
    out: list[str] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch == "#":
            end = query.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        if ch in "\"'`":
            j = i + 1
            while j < n and query[j] != ch:
                j += 2 if ch != "`" and query[j] == "\\" else 1
            if j >= n:
                return "", (
                    f"the string opened with {ch} at column {i + 1} is never closed; "
                    f"add the closing {ch} (in TOML, write the query in '...' so its \" need no escaping)"
                )
            out.append(" " * (j + 1 - i))
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out), None


def _bracket_problem(code: str) -> str | None:
    stack: list[tuple[str, int]] = []
    for col, ch in enumerate(code, start=1):
        if ch in "([{":
            stack.append((ch, col))
        elif ch in _PAIRS:
            if not stack:
                return f"{ch!r} at column {col} closes nothing; remove it or add the opening {_PAIRS[ch]!r}"
            opened, at = stack.pop()
            if opened != _PAIRS[ch]:
                closer = {v: k for k, v in _PAIRS.items()}[opened]
                return (
                    f"{opened!r} opened at column {at} is closed by {ch!r} at column {col}; "
                    f"close it with {closer!r}"
                )
    if stack:
        opened, at = stack[-1]
        closer = {v: k for k, v in _PAIRS.items()}[opened]
        return f"{opened!r} opened at column {at} is never closed; add {closer!r}"
    return None
