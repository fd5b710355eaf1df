"""What `incident-bot run`, `deliver` and `check` verify before they serve, each problem as one
line that says what is wrong and how to fix it.

A problem an operator fixes in the configuration is a `StartupError` with exit code 2. Redis or
Slack not answering is retried with backoff for `STARTUP_TIMEOUT`, quietly (a container that
starts before its Redis is normal), and only then is an error with exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis import exceptions as redis_errors
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.redis_url import parse_redis_url
from bot.settings import Settings
from bot.store import connect

CONFIGURATION = 2
UNREACHABLE = 1

# Slack's answers that mean the token itself is wrong: retrying cannot help.
REFUSED_TOKEN = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "invalid_token",
        "missing_scope",
        "org_login_required",
        "ekm_access_denied",
        "team_access_not_granted",
    }
)
# Settings whose values are never echoed back: they are, or may contain, secrets.
SECRET = ("TOKEN", "SECRET", "PASSWORD", "REDIS_URL")
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 4.0
ATTEMPT_SECONDS = 10.0

T = TypeVar("T")


class StartupError(Exception):
    """One line for the operator, and the exit code: 2 for configuration, 1 for unreachable."""

    def __init__(self, message: str, exit_code: int = CONFIGURATION) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Transient(Exception):
    """Worth another try: the dependency did not answer, or answered that it is busy."""


def settings_problem(exc: ValidationError) -> str:
    """The first bad variable, its value (unless secret) and what it should be, on one line."""
    problems = exc.errors(include_url=False)
    first = problems[0]
    name = str(first["loc"][0]) if first["loc"] else "the configuration"
    message = str(first["msg"]).removeprefix("Value error, ")
    shown = "" if any(word in name for word in SECRET) else f"={first.get('input')!r}"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{name}{shown} is not valid: {message}{more}."


def port_problem(host: str, port: int, option: str = "PORT or --port") -> str | None:
    """Why this process could not listen on host:port, found by binding it once; None if it can.

    Binding here, before anything starts, turns a busy port into one line instead of a
    traceback from the server (or, in Socket Mode, from the health server after connecting)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return f"--host {host!r} is not an address to listen on ({exc})."
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # The servers set SO_REUSEADDR too; with it, a port that only has old connections in
        # TIME_WAIT binds, and one that something listens on does not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use: stop what listens there, or set {option}."
            if exc.errno == errno.EACCES:
                return f"port {port} needs privileges this user does not have: set {option} above 1023."
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine: set --host."
            return f"cannot listen on {host}:{port}: {exc.strerror}."
    return None


async def _retrying(attempt: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    """`attempt()` until it returns, raises StartupError, or `timeout` seconds pass in _Transient."""
    deadline = time.monotonic() + timeout
    backoff = FIRST_BACKOFF
    while True:
        try:
            return await asyncio.wait_for(attempt(), timeout=min(ATTEMPT_SECONDS, max(0.5, timeout)))
        except TimeoutError:
            reason = f"no answer within {min(ATTEMPT_SECONDS, max(0.5, timeout)):g} s"
        except _Transient as exc:
            reason = str(exc)
        left = deadline - time.monotonic()
        if left <= 0:
            raise StartupError(
                f"{what} after trying for {timeout:g} s (STARTUP_TIMEOUT): {reason}.", UNREACHABLE
            )
        await asyncio.sleep(min(backoff, left))
        backoff = min(backoff * 2, MAX_BACKOFF)


async def check_redis(settings: Settings, timeout: float) -> str:
    """Redis at REDIS_URL answers: where it is, for `check`. StartupError otherwise."""
    where = parse_redis_url(settings.redis_url).describe()
    try:
        client = connect(settings.redis_url, sentinel_password=settings.redis_sentinel_password or None)
    except (ValueError, TypeError) as exc:  # redis-py's own reading of the URL's options
        raise StartupError(f"REDIS_URL is not valid for redis-py ({where}): {_reason(exc)}.") from None

    async def ping() -> str:
        try:
            await client.ping()
        except (redis_errors.AuthenticationError, redis_errors.AuthorizationError) as exc:
            raise StartupError(f"Redis at {where} refused the credentials in REDIS_URL: {exc}") from None
        except TypeError as exc:  # an option in the URL's query that redis-py does not know
            raise StartupError(f"REDIS_URL is not valid for redis-py ({where}): {_reason(exc)}.") from None
        except (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            redis_errors.BusyLoadingError,
            redis_errors.ClusterDownError,
            redis_errors.TryAgainError,
            redis_errors.RedisClusterException,  # no node answers yet, or not a Cluster
            OSError,
        ) as exc:
            raise _Transient(_reason(exc)) from None
        except redis_errors.RedisError as exc:
            raise StartupError(
                f"Redis at {where} refused the bot: {_reason(exc)}. Check REDIS_URL."
            ) from None
        return where

    try:
        return await _retrying(ping, timeout, f"the incident store (Redis) at {where} is unreachable")
    finally:
        await _close(client)


def _reason(exc: BaseException) -> str:
    """An exception as a clause: its text without a final full stop, or its type."""
    return (str(exc).strip().rstrip(".") or type(exc).__name__).replace("\n", " ")


async def _close(client: aioredis.Redis) -> None:
    # Closing a client that never connected can fail inside redis-py; nothing is lost.
    with contextlib.suppress(Exception):
        await client.aclose()


@dataclass(frozen=True)
class SlackIdentity:
    bot_user: str
    team: str

    def describe(self) -> str:
        return f"@{self.bot_user} in the workspace {self.team}"


async def check_bot_token(settings: Settings, timeout: float) -> SlackIdentity:
    """`auth.test` with SLACK_BOT_TOKEN: whose bot this is. StartupError if Slack refuses the
    token or it is not a bot token; retried while Slack does not answer."""

    async def call(client: AsyncWebClient) -> SlackIdentity:
        answer = await _slack_call(client, "auth.test", "SLACK_BOT_TOKEN", settings)
        if not answer.get("bot_id"):
            raise StartupError(
                "SLACK_BOT_TOKEN is not a bot token (auth.test names no bot): use the app's "
                "Bot User OAuth Token, xoxb-…."
            )
        return SlackIdentity(str(answer.get("user") or answer.get("user_id")), str(answer.get("team")))

    return await _with_client(settings, settings.slack_bot_token, call, timeout)


async def check_app_token(settings: Settings, timeout: float) -> None:
    """`apps.connections.open` with SLACK_APP_TOKEN, as Socket Mode will call it: slack_sdk would
    retry a refused token forever, so it is refused here instead."""

    async def call(client: AsyncWebClient) -> None:
        await _slack_call(client, "apps.connections.open", "SLACK_APP_TOKEN", settings)

    await _with_client(settings, settings.slack_app_token, call, timeout)


async def _with_client(
    settings: Settings, token: str, call: Callable[[AsyncWebClient], Awaitable[T]], timeout: float
) -> T:
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(
            token=token,
            base_url=settings.api_base_url,
            session=session,
            timeout=int(ATTEMPT_SECONDS),
            retry_handlers=[],
        )
        return await _retrying(
            lambda: call(client), timeout, f"Slack at {settings.api_base_url} is unreachable"
        )


async def _slack_call(
    client: AsyncWebClient, method: str, variable: str, settings: Settings
) -> dict[str, object]:
    try:
        response = await client.api_call(method)
    except SlackApiError as exc:
        raise _refusal(exc, method, variable, settings) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise _Transient(_reason(exc)) from None
    data = response.data
    return data if isinstance(data, dict) else {}


def _refusal(exc: SlackApiError, method: str, variable: str, settings: Settings) -> Exception:
    """What a failed Slack call at start means: a refused token (StartupError) or try again."""
    response = exc.response
    data = getattr(response, "data", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    if not isinstance(data, dict) or not data:
        # An answer that is not Slack's JSON: an outage page, or SLACK_API_URL is not Slack.
        return _Transient(
            f"{method} answered HTTP {status} with a body that is not Slack's JSON "
            f"(is SLACK_API_URL={settings.slack_api_url!r} right?)"
        )
    error = str(data.get("error") or "unknown_error")
    if error == "missing_scope" and variable == "SLACK_APP_TOKEN":
        return StartupError(
            "Slack refused SLACK_APP_TOKEN (missing_scope): give the app-level token the "
            "connections:write scope (Basic Information, App-Level Tokens)."
        )
    if error in REFUSED_TOKEN:
        return StartupError(
            f"Slack refused {variable} ({error}): copy the token again from the app's settings."
        )
    return _Transient(f"{method} answered {error}" + (f" (HTTP {status})" if status else ""))
