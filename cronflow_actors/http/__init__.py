"""The HTTP edge: the Starlette app (webhooks, runs, work-item actions, events, resume,
/metrics, /healthz). Built by the long-lived runtime issue; this layer holds nothing yet.
"""
