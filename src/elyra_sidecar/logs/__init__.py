"""`elyra-sidecar logs RUN`: a run's script logs, in order, live (a client command, not a deployable)."""
