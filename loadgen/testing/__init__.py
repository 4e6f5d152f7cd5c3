"""Fakes shipped for the benches and the tests, outside the client package they exercise.

- ``cluster``  :class:`~loadgen.testing.cluster.TestCluster`: fake Pegasus metas and replicas
  on loopback, told per address how to misbehave (``python -m loadgen.testing.cluster``
  runs one as a process, for ``pegbench bench client``, ``bench cpu`` and subprocess tests).
"""
