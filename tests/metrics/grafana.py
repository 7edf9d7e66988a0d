"""What grafana/ holds, read for tests: the dashboards' panels and queries (with Grafana's
variables replaced so Prometheus can run them), their variables, and the alert rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALERTS",
    "DASHBOARDS",
    "GRAFANA",
    "Query",
    "alert_expressions",
    "dashboards",
    "queries",
    "variable_queries",
]

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
ALERTS = GRAFANA / "prometheus" / "alerts.yml"

# What Grafana puts in place of its variables before it sends a query: a rate window of four
# scrape intervals (the tests scrape every second), and "All" for the dashboards' own variables.
RATE_INTERVAL = "10s"
_VARIABLE = re.compile(r"\$(__rate_interval|workflow|instance)\b|\$\{(\w+)\}")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str
    """As the dashboard has it (with Grafana variables)."""

    @property
    def promql(self) -> str:
        """As Grafana sends it to Prometheus, with the variables at their defaults."""

        def replace(match: re.Match[str]) -> str:
            name = match[1] or match[2]
            if name == "__rate_interval":
                return RATE_INTERVAL
            if name in ("workflow", "instance"):
                return ".*"
            raise AssertionError(f"{self}: unknown variable ${name}")

        return _VARIABLE.sub(replace, self.expr)

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref}"


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON of grafana/dashboards, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel but rows (and the panels inside collapsed rows)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries() -> list[Query]:
    found = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel["targets"]:
                found.append(Query(name, panel["title"], target["refId"], target["expr"]))
    return found


def variable_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard, variable, metric, label) of each metric of each ``label_values(metric,
    label)`` or ``label_values({__name__=~"metric|metric"}, label)`` variable."""
    found = []
    for name, dashboard in dashboards().items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            text = variable["query"]["query"]
            match = re.fullmatch(r'label_values\((\w+|\{__name__=~"[\w|]+"\}),\s*(\w+)\)', text)
            assert match, f"{name}: variable {variable['name']}: {text!r} is not label_values"
            metrics = re.findall(r"\w+", match[1].removeprefix("{__name__=~"))
            found += [(name, variable["name"], metric, match[2]) for metric in metrics]
    return found


def alert_expressions() -> dict[str, str]:
    """Alert name -> expression, from grafana/prometheus/alerts.yml."""
    rules = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
