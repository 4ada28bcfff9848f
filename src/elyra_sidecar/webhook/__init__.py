"""The in-cluster admission webhook: `admit()` (pure: review in, review out) and the HTTPS server around it.

May import the transformer (it runs the same `transform()`), never the pod room.
"""

from elyra_sidecar.webhook._admission import Outcome, admit

__all__ = ["Outcome", "admit"]
