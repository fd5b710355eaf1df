"""The floor: a bare Bolt AsyncApp whose listeners only ack, on the bot's own server stack.

Same Starlette adapter, same uvicorn configuration as `incident-bot run`, same signing
verification and token authorization (one `auth.test` at the first request, like the bot), and
the same `/slack/events` and `/healthz` routes. Whatever the bot adds on top of this is its own.

Run it as `python -m bench.floor --port N` with SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and
SLACK_API_URL set, like the bot.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.ids import TICK_ACTION_PATTERN
from bot.settings import Settings


async def _only_ack(ack: AsyncAck) -> None:
    await ack()


def floor_app(settings: Settings) -> Starlette:
    client = AsyncWebClient(token=settings.slack_bot_token or None, base_url=settings.api_base_url)
    bolt = AsyncApp(
        client=client, signing_secret=settings.slack_signing_secret, request_verification_enabled=True
    )
    bolt.command("/incident")(_only_ack)
    bolt.action(TICK_ACTION_PATTERN)(_only_ack)
    slack_handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await slack_handler.handle(request)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    settings = Settings()
    # As bot/cli.py does: the same log format and level, and uvicorn's defaults (access log on).
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = uvicorn.Config(
        floor_app(settings),
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
