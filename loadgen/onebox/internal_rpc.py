"""Onebox-internal RPCs: their names, registered with the Pegasus codec so both ends share
framing, and the completeness check every internal request passes before it is acted on."""

from __future__ import annotations

from typing import Any

from thrift.Thrift import TType

from ..pegasus import codec
from .gen.onebox import ttypes as ob

RPC_BEACON = codec.register_rpc("RPC_ONEBOX_BEACON", ob.beacon_request, ob.beacon_response).name
RPC_CONFIG_PROPOSAL = codec.register_rpc(
    "RPC_ONEBOX_CONFIG_PROPOSAL", ob.config_proposal, ob.empty_response).name
RPC_MEMBER_CHANGE = codec.register_rpc(
    "RPC_ONEBOX_MEMBER_CHANGE", ob.member_change_request, ob.member_change_response).name
RPC_PREPARE = codec.register_rpc("RPC_ONEBOX_PREPARE", ob.prepare_request, ob.prepare_response).name
RPC_NODE_STATS = codec.register_rpc(
    "RPC_ONEBOX_NODE_STATS", ob.node_stats_request, ob.node_stats_response).name


def well_formed(request: Any, partitions: int) -> bool:
    """Every field of an internal request is set (nested structs too) and each ``pidx`` names
    a partition of the table.

    Thrift skips fields of the wrong type, so a stray or forged frame decodes into a struct
    with holes; acting on it would crash a handler or host a partition that does not exist.
    """
    for spec in request.thrift_spec[1:]:
        _, ttype, name, inner, _ = spec
        value = getattr(request, name)
        if value is None:
            return False
        if name == "pidx" and not 0 <= value < partitions:
            return False
        if (ttype == TType.LIST and inner[0] == TType.STRUCT
                and not all(well_formed(item, partitions) for item in value)):
            return False
    return True
