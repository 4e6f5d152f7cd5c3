"""Embedded Pegasus-compatible cluster ("onebox"): meta server, replica servers, supervisor."""
