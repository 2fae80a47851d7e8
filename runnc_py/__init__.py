"""runnc-py: an OCI runtime that runs Solo5 unikernels instead of Linux processes."""

__version__ = "0.1.0"
