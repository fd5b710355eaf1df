"""incident-bot: a Slack incident bot that keeps its state in Redis."""

__version__ = "0.1.0"
