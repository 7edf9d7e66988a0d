"""The benchmark suite of issue 16: cronflow-actors and its peers, measured in one sitting.

``cronflow-actors bench`` (``benchmarks.suite.runner``) runs every workload in a subprocess of
its own, one after another: ours under the interpreter that runs the suite
(``benchmarks.suite.ours``), each peer under the peers' interpreter (``benchmarks/suite/peers/``).
Every subprocess prints its figures as ``BENCH-RESULT {json}`` lines (``benchmarks.suite.record``,
standard library only, so the peers' virtualenv needs nothing of ours).
"""
