"""Helpers shared by the test modules: import them from here (``from support.onebox import
make_box``), never from another test module or from conftest.

``tests/`` is on ``sys.path`` under pytest's default (prepend) import mode, since it has no
``__init__.py``; so this package is importable as ``support`` by every test module.
"""
