"""What runs in the step pod: `tail` (the elyra-log sidecar), `install-live` and the live hook.

Imports nothing of the transformer or the webhook (import-linter keeps it so).
"""
