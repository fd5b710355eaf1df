"""Fixtures for the evidence tests: the exporter, a real Prometheus scraping it, a real
Alertmanager posting to a webhook receiver, a stand-in for Prometheus's API (for the failures the
real one will not produce on demand), and an HTTP session. The real servers skip, saying why, only
where their binary is not installed, and fail instead under CI, which installs them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import aiohttp
import pytest

from tests.evidence_servers import (
    ALERT_TOKEN,
    AlertmanagerServer,
    Exporter,
    PrometheusServer,
    StandIn,
    WebhookReceiver,
)

Server = TypeVar("Server", PrometheusServer, AlertmanagerServer)


def _started(make: Callable[[], Server]) -> Server:
    try:
        server = make()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):  # .ci/run installs both: a skip there would hide a broken step
            pytest.fail(f"CI needs it: {exc}")
        pytest.skip(str(exc))
    return server.start()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    """The exporter, shared by a module's tests: one that switches its error rate puts it back."""
    with Exporter() as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    """A Prometheus scraping `exporter` every second, shared by a module's tests (which must not
    kill it: `own_prometheus` is for that)."""
    server = _started(lambda: PrometheusServer([exporter.target]))
    yield server
    server.stop()


@pytest.fixture
def own_prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    """A Prometheus of the test's own, which it may kill."""
    server = _started(lambda: PrometheusServer([exporter.target]))
    yield server
    server.stop()


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def alertmanager(webhook_receiver: WebhookReceiver) -> Iterator[AlertmanagerServer]:
    """An Alertmanager sending every group to `webhook_receiver` with `ALERT_TOKEN`."""
    server = _started(lambda: AlertmanagerServer(webhook_receiver.url, ALERT_TOKEN))
    yield server
    server.stop()


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    async with StandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
