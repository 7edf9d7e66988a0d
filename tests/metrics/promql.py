"""PromQL for tests: does an expression parse (``promtool``), which metric and label names does it
use, and which names does the runtime's ``/metrics`` text export.

Parsing is checked by ``promtool check rules`` on a throw-away rules file holding one recording
rule per expression: it runs offline, loads Prometheus' own parser, and reports every bad
expression of a file in one run (``group "expr-3", rule 1, ...: could not parse expression: ...``).
``promtool query instant`` is no parser: it is an HTTP client that sends the expression to a
running server. Debian's promtool 2.42 has no ``promql format`` command either.

``promtool`` does not list the names an expression uses, so ``promql_names`` reads them with a
small lexer. It assumes the expression parses (check that first) and reads every selector, label
matcher, grouping clause (``by``, ``without``, ``on``, ``ignoring``, ``group_left``,
``group_right``) and the source labels of ``label_replace`` and ``label_join``.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["PromqlNames", "exported_names", "promql_names", "promql_parse_errors"]


@dataclass(frozen=True)
class PromqlNames:
    """Metric names and label names; ``__name__`` is never among the labels (it is the name)."""

    metrics: frozenset[str]
    labels: frozenset[str]


def promql_parse_errors(expressions: Sequence[str]) -> dict[str, str]:
    """promtool's error for every expression that does not parse (all of them checked in one
    promtool run); empty when all parse. Parsing includes Prometheus' type checks (a function
    given the wrong argument type is an error), not whether a series exists."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool is not on PATH (.ci/install-test-deps installs it)")
    groups = [
        {"name": f"expr-{i}", "rules": [{"record": f"check:expr_{i}", "expr": expression}]}
        for i, expression in enumerate(expressions)
    ]
    with tempfile.TemporaryDirectory(prefix="promql-") as directory:
        rules = Path(directory) / "rules.yml"
        rules.write_text(json.dumps({"groups": groups}))  # JSON is YAML
        checked = subprocess.run(
            [promtool, "check", "rules", str(rules)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    if checked.returncode == 0:
        return {}
    errors: dict[str, str] = {}
    for line in (checked.stdout + checked.stderr).splitlines():
        found = re.search(r'group "expr-(\d+)", rule \d+, "[^"]*": (.*)$', line)
        if found:
            errors[expressions[int(found[1])]] = found[2]
    if not errors:  # an error promtool did not tie to one expression: show all it said
        raise RuntimeError(f"promtool check rules failed:\n{checked.stdout}{checked.stderr}")
    return errors


_TOKEN = re.compile(
    r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<ident>[a-zA-Z_][a-zA-Z0-9_:]*|:[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],:@])
    """,
    re.VERBOSE,
)
_MATCHERS = frozenset({"=", "!=", "=~", "!~"})
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
# function -> index of its first argument that names a source label (the rest follow it)
_LABEL_ARGUMENTS = {"label_replace": (3, 4), "label_join": (3, None)}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


@dataclass
class _Call:
    """An open parenthesis: the function it calls (None for grouping) and the argument reached."""

    function: str | None
    argument: int = 0

    def names_label(self) -> bool:
        if self.function not in _LABEL_ARGUMENTS:
            return False
        first, end = _LABEL_ARGUMENTS[self.function]
        return self.argument >= first and (end is None or self.argument < end)


def _tokens(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        found = _TOKEN.match(expression, position)
        if found is None or found.lastgroup is None:
            raise ValueError(f"cannot read {expression!r} at {position}: {expression[position:]!r}")
        if found.lastgroup != "space":
            tokens.append(_Token(found.lastgroup, found.group()))
        position = found.end()
    return tokens


def _unquote(string: str) -> str:
    if string.startswith("`"):  # a raw string
        return string[1:-1]
    # Go's escapes in quoted strings match Python's for anything a label name can hold
    return str(ast.literal_eval(string))


def promql_names(expression: str) -> PromqlNames:
    """The metric names and label names ``expression`` reads. A name matched by a regular
    expression (``{__name__=~"cronflow_.*"}``) is not listed; labels that ``label_replace`` or
    ``label_join`` create are not listed, their source labels are."""
    tokens = _tokens(expression)
    metrics: set[str] = set()
    labels: set[str] = set()
    calls: list[_Call] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1].text if i + 1 < len(tokens) else ""
        word = token.text.lower() if token.kind == "ident" else ""
        if token.text == "[":  # a range or a subquery: durations only
            i = _closing(tokens, i, "[", "]")
        elif token.text == "{":
            end = _closing(tokens, i, "{", "}")
            _matchers(tokens[i + 1 : end], metrics, labels)
            i = end
        elif word in _GROUPING:
            if following == "(":
                end = _closing(tokens, i + 1, "(", ")")
                labels.update(t.text for t in tokens[i + 2 : end] if t.kind == "ident")
                i = end
        elif word and (word in _KEYWORDS or following.lower() in ("by", "without")):
            pass  # an operator, or an aggregation written `sum by (...) (...)`
        elif word and following == "(":
            calls.append(_Call(token.text))
            i += 1
        elif word:
            metrics.add(token.text)
        elif token.text == "(":
            calls.append(_Call(None))
        elif token.text == ")" and calls:
            calls.pop()
        elif token.text == "," and calls:
            calls[-1].argument += 1
        elif token.kind == "string" and calls and calls[-1].names_label():
            labels.add(_unquote(token.text))
        i += 1
    labels.discard("__name__")
    return PromqlNames(frozenset(metrics), frozenset(labels))


def _closing(tokens: list[_Token], start: int, opening: str, closing: str) -> int:
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i].text == opening:
            depth += 1
        elif tokens[i].text == closing:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {opening!r} in the expression")


def _matchers(tokens: list[_Token], metrics: set[str], labels: set[str]) -> None:
    for i in range(len(tokens) - 2):
        name, operator, value = tokens[i : i + 3]
        if name.kind != "ident" or operator.text not in _MATCHERS or value.kind != "string":
            continue
        if name.text == "__name__":
            if operator.text == "=":
                metrics.add(_unquote(value.text))
        else:
            labels.add(name.text)


# the series a family with no sample yet will have (a `_created` series, when the client writes
# one, is a gauge family of its own in the text format)
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
}
# what Prometheus adds to every target it scrapes
SCRAPE_LABELS = frozenset({"job", "instance"})
SCRAPE_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)


def exported_names(metrics_text: str) -> PromqlNames:
    """The names a query may use once Prometheus scrapes a process whose ``/metrics`` body is
    ``metrics_text``: the name of every sample, every label some sample carries (``le``
    included), and what Prometheus adds per target (labels ``job`` and ``instance``; series ``up``
    and ``scrape_*``). A family with no sample yet (a labelled metric nothing has touched)
    contributes the series names its type implies (``x_total`` for a counter ``x``; ``_bucket``,
    ``_count``, ``_sum`` for a histogram) but no labels: have the test produce a sample first."""
    metrics = set(SCRAPE_SERIES)
    labels = set(SCRAPE_LABELS)
    for family in text_string_to_metric_families(metrics_text):
        if not family.samples:
            metrics.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        for sample in family.samples:
            metrics.add(sample.name)
            labels.update(sample.labels)
    return PromqlNames(frozenset(metrics), frozenset(labels))
