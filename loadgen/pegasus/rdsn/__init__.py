"""Hand-written rDSN placeholder types (see ``idl/rdsn.thrift``); import from ``.ttypes``."""
