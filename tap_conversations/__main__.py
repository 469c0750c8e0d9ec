"""Run the tap as `python -m tap_conversations`."""

from tap_conversations.cli import main

main()
