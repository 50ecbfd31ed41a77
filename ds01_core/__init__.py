"""ds01: every GPU workload on a shared server seen, attributed and limited."""

__version__ = "0.1.0"
