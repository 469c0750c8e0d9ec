# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Sandbox API: a real loopback HTTP server that behaves like the vendor's REST API.

Test-only: production code never imports this package. See README.md beside it.
"""

from tests.sandbox.server import Sandbox
from tests.sandbox.state import ALL_SCOPES, DEMO_TOKEN, Counters, Faults

__all__ = ["ALL_SCOPES", "DEMO_TOKEN", "Counters", "Faults", "Sandbox"]
