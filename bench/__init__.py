"""Benchmarks for incident-bot: `python -m bench.bench` measures the bot against a bare Bolt floor."""
