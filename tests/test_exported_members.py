"""The public API of ``loadgen.pegasus`` is pinned: adding or dropping a name is a decision."""

from __future__ import annotations

import inspect

import pytest

import loadgen.errors as errors
import loadgen.pegasus as pegasus

pytestmark = pytest.mark.unit

PUBLIC = {
    "Client", "Table", "Outcome",
    "policies", "Policy", "PolicyInfo", "Reaction", "AttemptContext",
    "PegasusError", "OpTimeout", "SessionReset", "NotConnected", "NoPrimary", "ServerError",
    "StorageError", "ProtocolError",
}


def test_all_is_pinned():
    assert set(pegasus.__all__) == PUBLIC
    assert len(pegasus.__all__) == len(PUBLIC)  # no duplicates


def test_every_exported_name_resolves_and_is_listed_by_dir():
    for name in pegasus.__all__:
        obj = getattr(pegasus, name)
        if inspect.ismodule(obj):
            assert obj.__name__ == f"loadgen.pegasus.{name}"
        else:  # the class itself, not a stand-in: its own name, from inside the package
            assert inspect.isclass(obj) and obj.__name__ == name, name
            assert obj.__module__.startswith("loadgen."), obj.__module__
    assert PUBLIC <= set(dir(pegasus))
    assert pegasus.policies.create("legacy").name == "legacy"
    with pytest.raises(AttributeError):
        pegasus.NoSuchName  # noqa: B018


def test_exported_errors_are_the_one_tree():
    for name in ("PegasusError", "OpTimeout", "SessionReset", "NotConnected", "NoPrimary",
                 "ServerError", "StorageError", "ProtocolError"):
        cls = getattr(pegasus, name)
        assert cls is getattr(errors, name) and issubclass(cls, errors.PegbenchError)
