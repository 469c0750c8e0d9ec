"""Run the tap as `python -m tap_conversations`."""

from tap_conversations.tap import TapConversations

TapConversations.cli()
