"""`incident-bot run [--port N]`: start the bot over HTTP, or over Socket Mode with SLACK_APP_TOKEN."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bot.app import IncidentBot, create_app
from bot.playbook import PlaybookError
from bot.settings import Settings

log = logging.getLogger("incident-bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incident-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the bot")
    run.add_argument("--port", type=int, default=None, help="HTTP port (default: $PORT, else 3000)")
    run.add_argument("--host", default="0.0.0.0", help="HTTP address to listen on (default 0.0.0.0)")
    demo = sub.add_parser(
        "demo", help="play a scripted incident against a built-in Slack stand-in (no workspace needed)"
    )
    demo.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or None,
        help="run on this Redis (its database is flushed) instead of the embedded store",
    )
    return parser


def _fail(message: str) -> int:
    print(f"incident-bot: {message}", file=sys.stderr)
    return 2


async def _serve_socket_mode(bot: IncidentBot) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(bot.bolt, bot.settings.slack_app_token)
    await bot.start()
    try:
        await handler.start_async()  # type: ignore[no-untyped-call]
    finally:
        await bot.close()


def _serve_http(bot: IncidentBot, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        bot.asgi(), host=host, port=port, log_level=bot.settings.log_level.lower(), lifespan="on"
    )
    log.info("serving Slack requests on http://%s:%d/slack/events", host, port)
    uvicorn.Server(config).run()


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        return _fail(f"bad configuration: {exc}")
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not settings.slack_bot_token:
        return _fail("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…).")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        return _fail("set SLACK_SIGNING_SECRET to serve HTTP, or SLACK_APP_TOKEN (xapp-…) for Socket Mode.")
    try:
        bot = create_app(settings)
    except PlaybookError as exc:
        return _fail(f"the playbook is not valid:\n{exc}")
    if settings.slack_app_token:
        log.info("connecting to Slack over Socket Mode")
        asyncio.run(_serve_socket_mode(bot))
    else:
        _serve_http(bot, args.host, args.port if args.port is not None else settings.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "demo":
        from bot.demo import main as demo_main

        return demo_main(args.redis_url)
    return _fail(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
