"""The ``elig`` command line and the work behind its commands (protocol cases, batch screening)."""
