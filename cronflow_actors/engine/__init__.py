"""The engine layer: the actors that run a NetSpec (WorkflowActor, TaskActor, WorkItemActor,
ActionActor), their contexts, retries, timeouts, actions and policies.

Built by the net engine issue; this layer holds nothing yet.
"""
