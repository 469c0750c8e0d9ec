# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
# ruff: noqa: INP001 - a folder for PYTHONPATH, imported as the top-level `sitecustomize`
"""Retries that wait milliseconds, in a CLI run started by `run_cli(..., fast_retries=True)`.

Python imports `sitecustomize` at start-up from PYTHONPATH, which that run puts this
folder on: the real executable runs as it would, its transient retries as many as ever
(`TRANSIENT_MAX_TRIES`), only the backoff between them shortened, as the in-process
`fast_retries` fixture shortens it. For tests about what retries end in, not their pace.
"""

from tap_conversations import client

client.TRANSIENT_BASE_SECONDS = 0.001
client.TRANSIENT_MAX_WAIT_SECONDS = 0.002
