"""The public API of ``loadgen.pegasus`` is pinned: adding or dropping a name is a decision."""

from __future__ import annotations

import pytest

import loadgen.errors as errors
import loadgen.pegasus as pegasus

pytestmark = pytest.mark.unit

PUBLIC = {
    "Client", "Table", "Outcome",
    "policies", "Policy", "PolicyInfo", "Reaction", "AttemptContext",
    "PegasusError", "OpTimeout", "SessionReset", "ServerError", "ProtocolError",
}


def test_all_is_pinned():
    assert set(pegasus.__all__) == PUBLIC
    assert len(pegasus.__all__) == len(PUBLIC)  # no duplicates


def test_every_exported_name_resolves_and_is_listed_by_dir():
    for name in pegasus.__all__:
        assert getattr(pegasus, name) is not None, name
    assert PUBLIC <= set(dir(pegasus))
    assert pegasus.policies.create("legacy").name == "legacy"
    with pytest.raises(AttributeError):
        pegasus.NoSuchName  # noqa: B018


def test_exported_errors_are_the_one_tree():
    for name in ("PegasusError", "OpTimeout", "SessionReset", "ServerError",
                 "ProtocolError"):
        cls = getattr(pegasus, name)
        assert cls is getattr(errors, name) and issubclass(cls, errors.PegbenchError)
