"""Onebox-internal RPC names, registered with the Pegasus codec so both ends share framing."""

from __future__ import annotations

from ..pegasus import codec
from .gen.onebox import ttypes as ob

RPC_BEACON = codec.register_rpc("RPC_ONEBOX_BEACON", ob.beacon_request, ob.beacon_response).name
RPC_CONFIG_PROPOSAL = codec.register_rpc(
    "RPC_ONEBOX_CONFIG_PROPOSAL", ob.config_proposal, ob.empty_response).name
RPC_MEMBER_CHANGE = codec.register_rpc(
    "RPC_ONEBOX_MEMBER_CHANGE", ob.member_change_request, ob.member_change_response).name
RPC_PREPARE = codec.register_rpc("RPC_ONEBOX_PREPARE", ob.prepare_request, ob.prepare_response).name
