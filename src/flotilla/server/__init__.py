"""The daemon: HTTP API over a Unix socket (and TCP later), /health, the supervisor task."""
