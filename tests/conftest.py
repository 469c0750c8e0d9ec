# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
pytest_plugins = ["tests.sandbox.fixtures"]
