"""`incident-bot run [--port N]`: start the bot over HTTP, or over Socket Mode with SLACK_APP_TOKEN.

`incident-bot run --delivery none` only answers Slack's requests; `incident-bot deliver`, in a
process of its own on the same Redis, then performs the Slack work they store and runs the
reminder clock, so that work never competes with the acks on one event loop."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import aiohttp
from aiohttp import web
from pydantic import ValidationError
from slack_sdk.web.async_client import AsyncWebClient

from bot import keys
from bot.app import EMBEDDED_WARNING, IncidentBot, create_app
from bot.errors import IncidentNotFound, StoreUnavailable
from bot.export import export_incident, export_resolved, parse_incident_id
from bot.intake import ALERTS_PATH, CHANGES_PATH
from bot.investigation import Investigation
from bot.logs import configure as configure_logging
from bot.logs import logging_config
from bot.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bot.metrics import counted_across_workers
from bot.playbook import PlaybookError, load_playbook
from bot.prometheus import PrometheusClient, PrometheusError
from bot.redis_url import RedisUrlError
from bot.settings import Settings
from bot.slack_gateway import SlackGateway
from bot.startup import (
    CONFIGURATION,
    UNREACHABLE,
    StartupError,
    check_app_token,
    check_bot_token,
    check_redis,
    port_problem,
    settings_problem,
)
from bot.store import LOST, IncidentStore, connect

log = logging.getLogger("incident-bot")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line, like every other start-up problem."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("incident-bot").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"incident-bot: {where}{message} (see --help).\n")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        type=_port,
        default=None,
        help="HTTP port (default: $PORT, else 3000); in Socket Mode it serves only /healthz, "
        "/readyz and /metrics",
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
        "--port",
        type=_port,
        default=None,
        help="serve GET /healthz, /readyz and /metrics on this port (default: no HTTP at all)",
    )
    deliver.add_argument("--host", default="0.0.0.0", help="address for /healthz (default 0.0.0.0)")
    sub.add_parser(
        "check",
        help="check the configuration, the playbook, Redis and the Slack tokens without starting",
        description="Check what `incident-bot run` needs, without starting it, and print what was "
        "checked. Exit 0 when all is well, 2 for a configuration problem, 1 when Redis or Slack "
        "does not answer (after STARTUP_TIMEOUT).",
    )
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
    export = sub.add_parser(
        "export",
        help="print an incident as JSON from Redis (or every resolved one, a line each), "
        "to archive before INCIDENT_RETENTION expires it",
    )
    exported = export.add_mutually_exclusive_group(required=True)
    exported.add_argument("incident", nargs="?", help="the incident, like INC-42")
    exported.add_argument(
        "--all-resolved", action="store_true", help="every resolved incident still in Redis, as JSON lines"
    )
    demo = sub.add_parser(
        "demo",
        help="play a scripted incident against a built-in Slack stand-in (no workspace needed)",
        description="Play a scripted incident, sped up, against the real bot and a built-in Slack "
        "stand-in, narrating each person's action, then print the channels as Slack shows them.",
    )
    demo.add_argument(
        "--redis-url",
        default=None,
        help="store the demo's incidents in this Redis (same forms as REDIS_URL) instead of in "
        "memory. The demo refuses a database holding incident-bot data it did not write, leaves "
        "other keys alone and deletes its own when it ends, so it can run there again. "
        "REDIS_URL is not read.",
    )
    demo.add_argument(
        "--raw", action="store_true", help="print the channels as the mrkdwn the bot sent, not rendered"
    )
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("incident-bot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _fail(message: str, exit_code: int = CONFIGURATION) -> int:
    print(f"incident-bot: {message}", file=sys.stderr)
    return exit_code


async def _serve_health(bot: IncidentBot, host: str, port: int) -> web.AppRunner:
    """`GET /healthz` beside Socket Mode, so container health checks work in both modes."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(await bot.health())

    async def readyz(_: web.Request) -> web.Response:
        ready, reason = await bot.readiness()
        return web.json_response({"ready": ready, "reason": reason}, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=await bot.metrics_page(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)

    async def evidence(request: web.Request) -> web.Response:
        given = await bot.receive_evidence(
            request.path,
            request.headers.get("Authorization", ""),
            request.content_length,
            lambda: request.content.iter_any(),
        )
        return web.json_response(given.body, status=given.status)

    app.router.add_post(ALERTS_PATH, evidence)
    app.router.add_post(CHANGES_PATH, evidence)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:  # taken since the check before start-up
        await runner.cleanup()
        raise StartupError(f"cannot serve /healthz on {host}:{port}: {exc.strerror}.") from None
    return runner


async def _serve_socket_mode(bot: IncidentBot, host: str, port: int) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(bot.bolt, bot.settings.slack_app_token)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    health = await _serve_health(bot, host, port)
    await bot.start()
    try:
        if not await _connected(handler, stop, bot.settings.startup_timeout.total_seconds()):
            return 0  # stopped while connecting
        log.info("connected over Socket Mode; health on http://%s:%d/healthz", host, port)
        await stop.wait()
    finally:
        # Let queued checklist re-renders go out before the socket and Redis close.
        await bot.close()
        await handler.close_async()  # type: ignore[no-untyped-call]
        await health.cleanup()
    return 0


async def _connected(handler: Any, stop: asyncio.Event, timeout: float) -> bool:
    """Open the Socket Mode connection: True once open, False if stopped first; StartupError
    (exit 1) if it does not open within `timeout`. slack_sdk retries a WebSocket that does not
    open forever, logging a traceback each time: quietly here, as every start-up check is."""
    failures: list[str] = []

    def quiet(record: logging.LogRecord) -> bool:
        failures.append(record.getMessage())
        return record.levelno < logging.WARNING

    socket_log = handler.client.logger
    socket_log.addFilter(quiet)
    connecting = asyncio.ensure_future(handler.connect_async())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {connecting, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        socket_log.removeFilter(quiet)
        stopped.cancel()
        if not connecting.done():
            connecting.cancel()
    if connecting in done:
        connecting.result()
        return True
    if stopped in done:
        return False
    reason = failures[-1].splitlines()[0].split("; Retrying")[0].rstrip(".") if failures else "no answer"
    raise StartupError(
        f"Slack's Socket Mode connection did not open within {timeout:g} s (STARTUP_TIMEOUT): {reason}.",
        UNREACHABLE,
    )


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
    settings = bot.settings
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        # Every worker process sets up logging from this, before it builds its bot.
        "log_config": logging_config(settings.log_level, settings.log_format),
        "log_level": settings.log_level.lower(),
        "lifespan": "on",
        "access_log": False,  # every request is POST /slack/events; listeners log what matters
    }
    if workers > 1:
        # Each worker builds its own bot from the environment; Redis is what they share, and
        # its atomic claims keep reminders and checklist renders right across processes.
        factory = "asgi_from_environment" if bot.deliver_here else "asgi_without_delivery_from_environment"
        # Each worker counts into files of its own there; a scrape, whichever worker answers it,
        # sums them all.
        with counted_across_workers():
            uvicorn.run(f"bot.app:{factory}", factory=True, workers=workers, **options)
    else:
        uvicorn.Server(uvicorn.Config(bot.asgi(), **options)).run()


def _settings() -> Settings:
    """The settings from the environment, with logging set up; StartupError if they are bad."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise StartupError(settings_problem(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _build(settings: Settings, *, deliver_here: bool = True) -> IncidentBot:
    """The bot; StartupError if the configuration is wrong (the playbook, REDIS_URL)."""
    try:
        return create_app(settings, deliver_here=deliver_here)
    except PlaybookError as exc:
        raise StartupError(f"the playbook is not valid: {_joined(str(exc))}") from None
    except RedisUrlError as exc:
        raise StartupError(str(exc)) from None
    except (ValueError, TypeError) as exc:  # redis-py's own reading of REDIS_URL's options
        raise StartupError(f"REDIS_URL is not valid for redis-py: {str(exc).rstrip('.')}.") from None


def _joined(text: str) -> str:
    """A multi-line message as one line."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _require_bot_token(settings: Settings) -> None:
    if not settings.slack_bot_token:
        raise StartupError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…).")


async def _reach(settings: Settings, *, app_token: bool) -> None:
    """Redis and Slack answer, and Slack takes the tokens; StartupError if not (after retries)."""
    timeout = settings.startup_timeout.total_seconds()
    if settings.redis_url:
        await check_redis(settings, timeout)
    await check_bot_token(settings, timeout)
    if app_token:
        await check_app_token(settings, timeout)


def _run_options(settings: Settings, args: argparse.Namespace) -> int:
    """The port `run` listens on, once its options and the settings agree; StartupError if not."""
    _require_bot_token(settings)
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        raise StartupError("SLACK_APP_TOKEN must be an app-level token (xapp-…), not a bot or user token.")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise StartupError(
            "set SLACK_SIGNING_SECRET to serve HTTP, or SLACK_APP_TOKEN (xapp-…) for Socket Mode."
        )
    if args.workers < 1:
        raise StartupError("--workers must be 1 or more.")
    if args.workers > 1 and settings.slack_app_token:
        raise StartupError("--workers is for HTTP; in Socket Mode run several processes instead.")
    if args.workers > 1 and not settings.redis_url:
        raise StartupError("--workers needs REDIS_URL: workers share their state through Redis.")
    if args.delivery == "none" and not settings.redis_url:
        raise StartupError(
            "--delivery none needs REDIS_URL: `incident-bot deliver` reads the work from Redis."
        )
    port: int = args.port if args.port is not None else settings.port
    problem = port_problem(args.host, port)
    if problem is not None:
        raise StartupError(problem)
    return port


def run(args: argparse.Namespace) -> int:
    try:
        settings = _settings()
        port = _run_options(settings, args)
        bot = _build(settings, deliver_here=args.delivery == "inline")
        asyncio.run(_reach(settings, app_token=bool(settings.slack_app_token)))
        if not settings.redis_url:
            log.warning(EMBEDDED_WARNING)
        if settings.slack_app_token:
            log.info("connecting to Slack over Socket Mode")
            return asyncio.run(_serve_socket_mode(bot, args.host, port))
    except StartupError as exc:
        return _fail(str(exc), exc.exit_code)
    _serve_http(bot, args.host, port, args.workers)
    return 0


def deliver(args: argparse.Namespace) -> int:
    try:
        settings = _settings()
        _require_bot_token(settings)
        if not settings.redis_url:
            raise StartupError("deliver needs REDIS_URL: the Redis where `incident-bot run` stores the work.")
        if args.port is not None and (problem := port_problem(args.host, args.port, "--port")):
            raise StartupError(problem)
        bot = _build(settings)
        asyncio.run(_reach(settings, app_token=False))
        return asyncio.run(_deliver(bot, args.host, args.port))
    except StartupError as exc:
        return _fail(str(exc), exc.exit_code)


def check(_: argparse.Namespace) -> int:
    """Each check on a line of its own; every problem also as one `incident-bot:` line on stderr."""
    try:
        settings = _settings()
    except StartupError as exc:
        return _fail(str(exc), exc.exit_code)
    exit_code = 0

    def report(what: str, outcome: str | StartupError) -> None:
        nonlocal exit_code
        if isinstance(outcome, StartupError):
            print(f"{what:<16} FAILED")
            _fail(str(outcome))
            exit_code = max(exit_code, outcome.exit_code)
        else:
            print(f"{what:<16} ok: {outcome}")

    mode = "Socket Mode" if settings.slack_app_token else f"HTTP on port {settings.port}"
    report("configuration", _checked(lambda: _configuration(settings), mode))
    report("playbook", _checked(lambda: _playbook(settings)))
    if settings.redis_url:
        report("Redis", _awaited(_store_state(settings)))
    else:
        print(f"{'Redis':<16} not set: the embedded in-memory store, lost when the bot stops")
    if settings.slack_bot_token:
        report("SLACK_BOT_TOKEN", _awaited(_bot_token(settings)))
    if settings.slack_app_token.startswith("xapp-"):
        report("SLACK_APP_TOKEN", _awaited(_app_token(settings)))
    if settings.alert_token:
        where = settings.triage_channel or settings.stakeholder_channel or "nowhere (no channel is set)"
        print(f"{'evidence':<16} on: /alerts/alertmanager and /events/change; alerts go to {where}")
    if settings.prometheus_url:
        report("PROMETHEUS_URL", _awaited(_prometheus(settings)))
    return exit_code


async def _prometheus(settings: Settings) -> str:
    """Prometheus answers a query, as `/incident metrics` will ask it."""
    async with aiohttp.ClientSession() as session:
        client = PrometheusClient(session, settings.prometheus_url, timeout=5.0)
        try:
            await client.query("vector(1)")
        except PrometheusError as exc:
            raise StartupError(f"PROMETHEUS_URL: {exc.problem}", UNREACHABLE) from None
    return f"{settings.prometheus_url} answers queries"


def _configuration(settings: Settings) -> None:
    _require_bot_token(settings)
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        raise StartupError("SLACK_APP_TOKEN must be an app-level token (xapp-…), not a bot or user token.")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise StartupError(
            "set SLACK_SIGNING_SECRET to serve HTTP, or SLACK_APP_TOKEN (xapp-…) for Socket Mode."
        )


def _playbook(settings: Settings) -> str:
    try:
        playbook = load_playbook(settings.incident_playbook)
    except PlaybookError as exc:
        raise StartupError(f"the playbook is not valid: {_joined(str(exc))}") from None
    source = str(settings.incident_playbook) if settings.incident_playbook else "the built-in playbook"
    return f"{source}, with {len(playbook.runbooks)} runbooks"


async def _store_state(settings: Settings) -> str:
    """Redis answers, and whether its data is the bot's (read only: nothing is written)."""
    try:
        where = await check_redis(settings, settings.startup_timeout.total_seconds())
    except RedisUrlError as exc:
        raise StartupError(str(exc)) from None
    redis = connect(settings.redis_url, sentinel_password=settings.redis_sentinel_password or None)
    store = IncidentStore(redis)
    try:
        identity = await store.redis.get(keys.IDENTITY)
        opened = await store.redis.zcard(keys.OPEN)
    except Exception as exc:
        raise StartupError(f"Redis at {where} answered a ping but not a read: {exc}", 1) from None
    finally:
        await store.close()
    if identity is not None and str(identity).startswith(LOST):
        raise StartupError(
            f"the incident store at {where} lost its data: restore Redis from its backup, "
            "or start afresh with `incident-bot store reset --next-number N`.",
            1,
        )
    state = "a new, empty store" if identity is None else f"{opened} open incident(s)"
    return f"{where}, {state}"


async def _bot_token(settings: Settings) -> str:
    identity = await check_bot_token(settings, settings.startup_timeout.total_seconds())
    return identity.describe()


async def _app_token(settings: Settings) -> str:
    await check_app_token(settings, settings.startup_timeout.total_seconds())
    return "Socket Mode connections can be opened"


def _checked(step: Callable[[], object], said: str | None = None) -> str | StartupError:
    try:
        found = step()
    except StartupError as exc:
        return exc
    return said if said is not None else str(found)


def _awaited(step: Coroutine[Any, Any, str]) -> str | StartupError:
    try:
        return asyncio.run(step)
    except StartupError as exc:
        return exc


def _store(command: str) -> tuple[Settings, IncidentStore] | str:
    """The settings and the incident store of REDIS_URL, for a command that works on Redis
    alone; or why there is none, in one line."""
    try:
        settings = _settings()
        if not settings.redis_url:
            return f"{command} needs REDIS_URL: the Redis the bot runs on."
        redis = connect(settings.redis_url, sentinel_password=settings.redis_sentinel_password or None)
    except StartupError as exc:
        return str(exc)
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


def export_incidents(args: argparse.Namespace) -> int:
    """One incident as JSON, or every resolved one as JSON lines, from Redis."""
    incident_id = None if args.all_resolved else parse_incident_id(str(args.incident))
    if not args.all_resolved and incident_id is None:
        return _fail(f"{args.incident!r} is not an incident: give one like INC-42.")
    opened = _store("export")
    if isinstance(opened, str):
        return _fail(opened)
    _, store = opened

    async def write() -> int:
        try:
            if incident_id is None:
                async for document in export_resolved(store):
                    print(json.dumps(document, ensure_ascii=False))
            else:
                print(json.dumps(await export_incident(store, incident_id), indent=2, ensure_ascii=False))
        except IncidentNotFound:
            return _fail(f"there is no incident {incident_id} in the store.")
        except StoreUnavailable as exc:
            return _unreachable(exc)
        except BrokenPipeError:
            # The reader stopped (`| head`): quietly, and nothing more to flush at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        finally:
            await store.close()
        return 0

    return asyncio.run(write())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "deliver":
        return deliver(args)
    if args.command == "check":
        return check(args)
    if args.command == "store":
        return store_reset(args)
    if args.command == "postmortem":
        return print_postmortem(args)
    if args.command == "export":
        return export_incidents(args)
    if args.command == "demo":
        from bot.demo.script import main as demo_main

        return demo_main(args.redis_url, raw=args.raw)
    return _fail(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
