"""pegbench: measures how fast Apache Pegasus clients recover from replica crashes and hangs."""

__version__ = "0.1.0"
