"""Faults: what to break, when, and (later) how.

- ``kinds``     the registry of fault kinds (kill, pause, restart) with their display metadata
- ``targets``   fault targets parsed once: ``replicaN``, ``primary-of:P``, ``random``
- ``schedule``  a profile's ``[faults]`` turned into one ordered, seeded plan

Submodules are imported by name (``from loadgen.faults import schedule``); this package
re-exports nothing, so importing it never pulls in the profile schema.
"""
