"""`incident-bot run [--port N]`: start the bot over HTTP, or over Socket Mode with SLACK_APP_TOKEN.

`incident-bot run --delivery none` only answers Slack's requests; `incident-bot deliver`, in a
process of its own on the same Redis, then performs the Slack work they store and runs the
reminder clock, so that work never competes with the acks on one event loop."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import keys
from bot.app import IncidentBot, create_app
from bot.errors import IncidentNotFound, StoreUnavailable
from bot.investigation import Investigation
from bot.playbook import PlaybookError, load_playbook
from bot.redis_url import RedisUrlError
from bot.settings import Settings
from bot.slack_gateway import SlackGateway
from bot.store import LOST, IncidentStore, connect

log = logging.getLogger("incident-bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incident-bot",
        description="A Slack incident bot: declare with /incident, work the playbook's checklists, "
        "keep everyone updated. Configured by environment variables (see `incident-bot run --help`).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    run = sub.add_parser(
        "run",
        help="start the bot",
        description=__doc__,
        epilog="environment variables it reads (README: Configuration): "
        + ", ".join(str(f.alias) for f in Settings.model_fields.values() if f.alias),
    )
    run.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port (default: $PORT, else 3000); in Socket Mode it serves only /healthz",
    )
    run.add_argument("--host", default="0.0.0.0", help="HTTP address to listen on (default 0.0.0.0)")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="HTTP worker processes sharing one Redis (default 1; more need REDIS_URL)",
    )
    run.add_argument(
        "--delivery",
        choices=("inline", "none"),
        default="inline",
        help="inline: also perform the stored Slack work and run the reminder clock (default); "
        "none: leave both to `incident-bot deliver` (needs REDIS_URL)",
    )
    deliver = sub.add_parser(
        "deliver",
        help="perform the Slack work stored in Redis and run the reminder clock, for `run --delivery none`",
    )
    deliver.add_argument(
        "--port", type=int, default=None, help="serve GET /healthz on this port (default: no HTTP at all)"
    )
    deliver.add_argument("--host", default="0.0.0.0", help="address for /healthz (default 0.0.0.0)")
    store = sub.add_parser("store", help="look after the incident store (Redis)")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    reset = store_sub.add_parser(
        "reset",
        help="after a data loss the bot refuses to declare: start the store afresh, deliberately "
        "(restoring Redis from its backup is the other way)",
    )
    reset.add_argument(
        "--next-number",
        type=int,
        required=True,
        help="the number of the next incident: above the last one declared, so none repeats",
    )
    postmortem = sub.add_parser(
        "postmortem",
        help="print an incident's postmortem draft (Markdown) from Redis, as the bot uploads it",
    )
    postmortem.add_argument("incident", help="the incident, like INC-42")
    demo = sub.add_parser(
        "demo", help="play a scripted incident against a built-in Slack stand-in (no workspace needed)"
    )
    demo.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or None,
        help="run on this Redis (its database is flushed) instead of the embedded store",
    )
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("incident-bot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _fail(message: str) -> int:
    print(f"incident-bot: {message}", file=sys.stderr)
    return 2


async def _serve_health(bot: IncidentBot, host: str, port: int) -> web.AppRunner:
    """`GET /healthz` beside Socket Mode, so container health checks work in both modes."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(await bot.health())

    async def readyz(_: web.Request) -> web.Response:
        ready, reason = await bot.readiness()
        return web.json_response({"ready": ready, "reason": reason}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _serve_socket_mode(bot: IncidentBot, host: str, port: int) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    token = bot.settings.slack_app_token
    try:
        # slack_sdk retries a refused token forever; refuse to start instead.
        await bot.bolt.client.apps_connections_open(app_token=token)
    except SlackApiError as exc:
        return _fail(f"Slack refused SLACK_APP_TOKEN ({exc.response.get('error')}).")
    handler = AsyncSocketModeHandler(bot.bolt, token)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    health = await _serve_health(bot, host, port)
    await bot.start()
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected over Socket Mode; health on http://%s:%d/healthz", host, port)
        await stop.wait()
    finally:
        # Let queued checklist re-renders go out before the socket and Redis close.
        await bot.close()
        await handler.close_async()  # type: ignore[no-untyped-call]
        await health.cleanup()
    return 0


async def _deliver(bot: IncidentBot, host: str, port: int | None) -> int:
    """The delivery loop, the reminder clock and the digest, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    health = await _serve_health(bot, host, port) if port is not None else None
    await bot.start()
    log.info("delivering the Slack work stored in Redis")
    try:
        await stop.wait()
    finally:
        await bot.close()
        if health is not None:
            await health.cleanup()
    return 0


def _serve_http(bot: IncidentBot, host: str, port: int, workers: int) -> None:
    import uvicorn

    log.info("serving Slack requests on http://%s:%d/slack/events", host, port)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": bot.settings.log_level.lower(),
        "lifespan": "on",
        "access_log": False,  # every request is POST /slack/events; listeners log what matters
    }
    if workers > 1:
        # Each worker builds its own bot from the environment; Redis is what they share, and
        # its atomic claims keep reminders and checklist renders right across processes.
        factory = "asgi_from_environment" if bot.deliver_here else "asgi_without_delivery_from_environment"
        uvicorn.run(f"bot.app:{factory}", factory=True, workers=workers, **options)
    else:
        uvicorn.Server(uvicorn.Config(bot.asgi(), **options)).run()


def _settings() -> Settings:
    """The settings from the environment (ValidationError if they are bad), with logging set up."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # APScheduler logs every run of the 4-per-second poll at INFO: about 650,000 lines a day.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    return settings


def _build(settings: Settings, *, deliver_here: bool = True) -> IncidentBot | str:
    """The bot, or what is wrong with the configuration (the playbook, REDIS_URL)."""
    try:
        return create_app(settings, deliver_here=deliver_here)
    except PlaybookError as exc:
        return f"the playbook is not valid:\n{exc}"
    except RedisUrlError as exc:
        return str(exc)


def run(args: argparse.Namespace) -> int:
    try:
        settings = _settings()
    except ValidationError as exc:
        return _fail(f"bad configuration: {exc}")
    if not settings.slack_bot_token:
        return _fail("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…).")
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        return _fail("SLACK_APP_TOKEN must be an app-level token (xapp-…), not a bot or user token.")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        return _fail("set SLACK_SIGNING_SECRET to serve HTTP, or SLACK_APP_TOKEN (xapp-…) for Socket Mode.")
    if args.workers < 1:
        return _fail("--workers must be 1 or more.")
    if args.workers > 1 and settings.slack_app_token:
        return _fail("--workers is for HTTP; in Socket Mode run several processes instead.")
    if args.workers > 1 and not settings.redis_url:
        return _fail("--workers needs REDIS_URL: workers share their state through Redis.")
    if args.delivery == "none" and not settings.redis_url:
        return _fail("--delivery none needs REDIS_URL: `incident-bot deliver` reads the work from Redis.")
    bot = _build(settings, deliver_here=args.delivery == "inline")
    if isinstance(bot, str):
        return _fail(bot)
    port = args.port if args.port is not None else settings.port
    if settings.slack_app_token:
        log.info("connecting to Slack over Socket Mode")
        return asyncio.run(_serve_socket_mode(bot, args.host, port))
    _serve_http(bot, args.host, port, args.workers)
    return 0


def deliver(args: argparse.Namespace) -> int:
    try:
        settings = _settings()
    except ValidationError as exc:
        return _fail(f"bad configuration: {exc}")
    if not settings.slack_bot_token:
        return _fail("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…).")
    if not settings.redis_url:
        return _fail("deliver needs REDIS_URL: the Redis where `incident-bot run` stores the work.")
    bot = _build(settings)
    if isinstance(bot, str):
        return _fail(bot)
    return asyncio.run(_deliver(bot, args.host, args.port))


def _store(command: str) -> tuple[Settings, IncidentStore] | str:
    """The settings and the incident store of REDIS_URL, for a command that works on Redis
    alone; or why there is none, in one line."""
    try:
        settings = _settings()
        if not settings.redis_url:
            return f"{command} needs REDIS_URL: the Redis the bot runs on."
        redis = connect(settings.redis_url, sentinel_password=settings.redis_sentinel_password or None)
    except ValidationError as exc:
        return f"bad configuration: {exc}"
    except RedisUrlError as exc:
        return str(exc)
    return settings, IncidentStore(redis)


def _unreachable(exc: StoreUnavailable) -> int:
    print(f"incident-bot: the incident store (Redis) is unreachable: {exc}", file=sys.stderr)
    return 1


def store_reset(args: argparse.Namespace) -> int:
    """Start the incident store afresh after a data loss, deliberately."""
    opened = _store("store reset")
    if isinstance(opened, str):
        return _fail(opened)
    _, store = opened
    if args.next_number < 1:
        return _fail("--next-number must be 1 or more.")

    async def reset() -> int:
        try:
            found = await store.redis.get(keys.IDENTITY)
            if found is not None and not str(found).startswith(LOST):
                return _fail(
                    "the incident store has its data (its identity is intact): nothing to reset."
                )
            await store.reset_identity(args.next_number)
        except StoreUnavailable as exc:
            return _unreachable(exc)
        finally:
            await store.close()
        print(f"The incident store starts afresh; the next incident is INC-{args.next_number}.")
        return 0

    return asyncio.run(reset())


def print_postmortem(args: argparse.Namespace) -> int:
    """The postmortem draft of one incident, from Redis. With SLACK_BOT_TOKEN, people are shown
    by their Slack names, as in the uploaded file; else by their ids."""
    opened = _store("postmortem")
    if isinstance(opened, str):
        return _fail(opened)
    settings, store = opened
    try:
        playbook = load_playbook(settings.incident_playbook)
    except PlaybookError as exc:
        return _fail(str(exc))
    incident_id = str(args.incident).strip().upper()

    async def render() -> int:
        try:
            draft = await Investigation(store, playbook).postmortem_draft(incident_id)
        except IncidentNotFound:
            return _fail(f"there is no incident {incident_id} in the store.")
        except StoreUnavailable as exc:
            return _unreachable(exc)
        finally:
            await store.close()
        names: dict[str, str] = {}
        if settings.slack_bot_token:
            client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.api_base_url)
            names = await SlackGateway(client).user_names(draft.people)
        print(draft.markdown(lambda user: names.get(user, user) if user else "incident-bot"), end="")
        return 0

    return asyncio.run(render())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "deliver":
        return deliver(args)
    if args.command == "store":
        return store_reset(args)
    if args.command == "postmortem":
        return print_postmortem(args)
    if args.command == "demo":
        from bot.demo.script import main as demo_main

        return demo_main(args.redis_url)
    return _fail(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
