"""The HTTP edge: a Starlette app over one ``Runtime`` (``create_app``), served by uvicorn from
``cronflow-actors serve``."""

from cronflow_actors.http.app import create_app

__all__ = ["create_app"]
