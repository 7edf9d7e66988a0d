"""Which exposition format a scraper asks for, and the content types of both."""

from __future__ import annotations

__all__ = ["OPENMETRICS", "TEXT", "wants_openmetrics"]

TEXT = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text format: what a scraper that asks for nothing in particular gets."""
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def wants_openmetrics(accept: str) -> bool:
    """Whether an ``Accept`` header lists OpenMetrics 1.x (Prometheus puts it first); anything
    else gets the text format, which every scraper reads."""
    for entry in accept.split(","):
        media, *parameters = (part.strip() for part in entry.split(";"))
        if media.lower() != "application/openmetrics-text":
            continue
        options = dict(p.partition("=")[::2] for p in parameters)
        if options.get("version", "1.0.0").startswith("1.") and options.get("q") != "0":
            return True
    return False
