"""Orchestration of many accounts' runs: Dagster definitions (see orchestrate/README.md)."""
