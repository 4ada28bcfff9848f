"""`python -m elyra_sidecar ...`: the same as the `elyra-sidecar` command."""

import sys

from elyra_sidecar._cli import main

sys.exit(main())
