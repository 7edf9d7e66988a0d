"""Each peer's workloads as a standalone script, run under the peers' interpreter (the bench's
own virtualenv, ``make bench-peers``): they import only the standard library, the peer, and
``benchmarks.suite.record``."""
