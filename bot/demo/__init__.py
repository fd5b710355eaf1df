"""What only the demo and the tests use: the Slack stand-in, the harness that runs the real bot
against it, and the scripted demo. Nothing in here runs in production."""
