"""The HTTP routes, a module per group: runs of flows, net workflows and work items, the flows'
webhooks, and the system routes (health, readiness, metrics, the OpenAPI document)."""
