"""tap-conversations: a Singer tap for a conversational-intelligence REST API."""
