"""`python -m elyra_sidecar.sidecar ...`: the same as `elyra-sidecar tail ...`."""

import sys

from elyra_sidecar.sidecar.tail import main

sys.exit(main())
