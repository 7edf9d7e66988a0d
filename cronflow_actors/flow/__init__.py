"""The flow layer: the Cronflow-style fluent builder, compiled to a NetSpec.

Built by the Cronflow-style API issue; this layer holds nothing yet.
"""
