"""Faults: what to break, when, how, and what it did to the cluster.

- ``injector``     the injector interface (one ``apply(action, node)``) and its action records
- ``injectors``    the injector registry: ``onebox``, ``command``, ``none``
- ``command_injector``   runs the profile's commands (the onebox's own: ``loadgen.onebox.cluster``)
- ``cluster``      the Cluster a run drives, and its view: node names and addresses, fresh
  configs, health; ``ExternalCluster`` (the onebox's is ``loadgen.onebox.cluster``)
- ``history``, ``observer``   partition-config history; the meta observers that fill it
- ``records``      fault records, ``faults.jsonl``, and the analysis's FaultEvent
- ``controller``   runs the plan against the clock in a greenlet; heals in ``finally``
- ``cooperative``  blocking calls and waits that never stall the gevent hub

Fault targets (``replicaN``, ``primary-of:P``, ``random``) are parsed with the profile, in
:mod:`loadgen.config.targets`; the profile's ``[faults]`` becomes one ordered, seeded plan in
:mod:`loadgen.config.plan`. The fault kinds (kill, pause, restart: what a profile may name, and
their inject/heal steps) are :mod:`loadgen.fault_kinds`, beside the node actions they are made
of. Submodules are imported by name (``from loadgen.faults import controller``); this
package re-exports nothing.
"""
