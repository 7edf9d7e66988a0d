"""The net layer: NetSpec, markings and the pure semantics of YAWL-style nets.

Pure data and functions only: no asyncio, no IO, no clock (tests/test_layers.py enforces it).
It is built by the net engine issue; this layer holds nothing yet.
"""
