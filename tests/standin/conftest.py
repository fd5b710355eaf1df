"""Fixtures for the Slack stand-in's own tests: a started stand-in on a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.standin import DEFAULT_BOT_SCOPES, SlackStandIn

from .builders import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# The bot needs only DEFAULT_BOT_SCOPES; these tests also exercise methods beyond them.
TEST_SCOPES = DEFAULT_BOT_SCOPES | {"groups:write", "groups:read", "groups:history", "users:read"}


@pytest_asyncio.fixture
async def slack(clock: FakeClock) -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(responders=(), clock=clock, scopes=TEST_SCOPES) as standin:
        yield standin


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.url)
