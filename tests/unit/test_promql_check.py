"""The config-time look at PromQL: certain mistakes are refused with their column and the fix;
anything valid PromQL may say is let through (the server's parser is the final word)."""

from __future__ import annotations

import pytest

from vmscale.config.promql import promql_problem


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("up", id="bare-metric"),
        pytest.param('sum(rate(http_requests_total{job="web"}[1m])) by (vmscale_instance)', id="rate-by"),
        pytest.param("avg by (vmscale_instance) (queue_depth)", id="by-first"),
        pytest.param('count(up{job=~"a|b", env!="prod"}) > bool 0', id="bool-inside"),
        pytest.param('sum(x{label="has ( and ] inside"})', id="brackets-in-strings"),
        pytest.param("sum(x{l='single \\' quote'})", id="escaped-quote"),
        pytest.param("max_over_time(x[5m:30s]) # a comment with (", id="subquery-and-comment"),
        pytest.param("-x", id="unary-minus"),
        pytest.param("x offset 5m", id="offset"),
        pytest.param("1", id="scalar"),
        pytest.param("`raw\\string`", id="raw-string"),
    ],
)
def test_valid_queries_pass(query: str) -> None:
    assert promql_problem(query) is None


@pytest.mark.parametrize(
    ("query", "words"),
    [
        pytest.param("", "query is empty", id="empty"),
        pytest.param("   ", "query is empty", id="blank"),
        pytest.param(
            "sum(rate(x[1m])", "'(' opened at column 4 is never closed; add ')'", id="unclosed-paren"
        ),
        pytest.param("rate(x[1m)", "'[' opened at column 7 is closed by ')' at column 10", id="wrong-closer"),
        pytest.param("sum(x))", "')' at column 7 closes nothing", id="extra-closer"),
        pytest.param(
            'x{job="web}', 'the string opened with " at column 7 is never closed', id="unclosed-string"
        ),
        pytest.param("sum(x) /", "ends with the operator '/'", id="trailing-divide"),
        pytest.param("a and", "ends with 'and'", id="trailing-and"),
        pytest.param("sum(x) by", "ends with 'by'", id="trailing-by"),
        pytest.param("x >=", "ends with the operator '>='", id="trailing-comparison"),
    ],
)
def test_certain_mistakes_are_named_with_the_fix(query: str, words: str) -> None:
    problem = promql_problem(query)
    assert problem is not None and words in problem, problem
