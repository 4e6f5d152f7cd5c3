"""The error registry: the names it knows, and what each means (DESIGN.md, "Details that matter")."""

from __future__ import annotations

import pytest

from loadgen.errors import ServerError, StorageError
from loadgen.pegasus import error_codes
from loadgen.pegasus.outcome import FAIL, UNKNOWN, classify
from loadgen.pegasus.policies import AttemptContext, Failover

pytestmark = pytest.mark.unit

CTX = AttemptContext(op="put", table="temp", partition=0, node="127.0.0.1:1", attempt=1,
                     retries=0, time_left_s=0.2, op_timeout_s=1.0)


def test_known_names_are_the_official_clients_table(vectors):
    assert error_codes.KNOWN == vectors["client_error_names"]


def test_decodable_names_are_known_or_server_only():
    assert not error_codes.SERVER_ONLY & set(error_codes.KNOWN)
    for name in (*error_codes.KNOWN, *error_codes.SERVER_ONLY):
        assert error_codes.is_decodable(name)
    assert error_codes.is_known("ERR_BUSY") and not error_codes.is_known("ERR_SPLITTING")
    assert not error_codes.is_decodable("ERR_NO_SUCH_THING")
    assert not error_codes.is_decodable("STORAGE_5")  # never on the wire as an error name


# DESIGN.md: failover retries these, refreshing the config first unless marked "no refresh".
# definite = a write that met this error certainly did not apply.
#   name                             retriable refresh definite
REGISTRY_TABLE = [
    ("ERR_SESSION_RESET",            True,     True,   False),  # a write in flight may apply
    ("ERR_TIMEOUT",                  True,     True,   False),  # also when a server sends it
    ("ERR_OBJECT_NOT_FOUND",         True,     True,   True),
    ("ERR_INVALID_STATE",            True,     True,   True),
    ("ERR_PARENT_PARTITION_MISUSED", True,     True,   True),
    ("ERR_NOT_ENOUGH_MEMBER",        True,     False,  True),
    ("ERR_BUSY",                     True,     False,  True),
    ("ERR_CAPACITY_EXCEEDED",        True,     False,  True),
    ("ERR_INACTIVE_STATE",           False,    False,  True),
    ("ERR_INVALID_PARAMETERS",       False,    False,  True),
    ("ERR_FORWARD_TO_OTHERS",        False,    False,  True),
    ("ERR_UNKNOWN",                  False,    False,  False),
    ("ERR_NO_PRIMARY",               False,    False,  False),
    ("STORAGE_5",                    False,    False,  True),   # a storage status: a result
    ("NOT_A_NAME",                   False,    False,  False),
]


@pytest.mark.parametrize("name, retriable, refresh, definite", REGISTRY_TABLE)
def test_registry_follows_the_design(name, retriable, refresh, definite):
    info = error_codes.info(name)
    assert (info.name, info.retriable, info.refresh, info.definite) == \
        (name, retriable, refresh, definite)
    assert error_codes.info(name) == info  # a stable answer, whether precomputed or not


def test_every_retriable_name_is_one_the_design_lists():
    retriable = {n for n in (*error_codes.KNOWN, *error_codes.SERVER_ONLY)
                 if error_codes.info(n).retriable}
    assert retriable == {n for n, r, _, _ in REGISTRY_TABLE if r}


@pytest.mark.parametrize("name, retriable, refresh, definite", REGISTRY_TABLE)
def test_outcome_of_a_failed_attempt(name, retriable, refresh, definite):
    # A sent write ends fail only on a definite error; a read, or a write never sent, fails.
    assert classify(name, write=True, sent=True) == (FAIL if definite else UNKNOWN)
    assert classify(name, write=True, sent=False) == FAIL
    assert classify(name, write=False, sent=True) == FAIL
    assert classify(None, write=True, sent=True) == "ok"


@pytest.mark.parametrize("name, retriable, refresh, definite", REGISTRY_TABLE)
def test_failover_follows_the_registry(name, retriable, refresh, definite):
    # The upstream models follow their own clients' tables (test_policies.py), not this one.
    reaction = Failover().on_error(name, CTX)
    assert (reaction.retry, reaction.refresh, reaction.wait_for_refresh) == \
        (retriable, retriable and refresh, retriable and refresh)


def test_storage_error_is_a_server_error_with_its_own_code():
    exc = StorageError(5, "storage status 5")
    assert isinstance(exc, ServerError) and exc.status == 5
    assert exc.code == "STORAGE_5" and exc.code.startswith(StorageError.CODE_PREFIX)
    assert error_codes.info(exc.code).definite
