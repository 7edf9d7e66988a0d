"""Bundled example workflows (``cronflow-actors serve`` runs them by default)."""
