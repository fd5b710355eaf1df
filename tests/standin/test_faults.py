"""Injected faults: Slack (or the network in between) failing the way the bot must survive.

Raw answers are read with aiohttp as well as through slack_sdk, because what slack_sdk makes of
an HTML page or an empty body is exactly what the bot has to cope with.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.standin import SlackStandIn
from bot.demo.standin.faults import GATEWAY_ERROR_PAGE, Faults

from .builders import FakeClock


def no_retries(slack: SlackStandIn, **options: Any) -> AsyncWebClient:
    """A client that makes exactly one attempt per call, so attempts can be counted."""
    return AsyncWebClient(token=slack.bot_token, base_url=slack.url, retry_handlers=[], **options)


async def raw_post(
    slack: SlackStandIn, method: str, timeout: float = 5.0, **params: str
) -> tuple[int, str | None, str]:
    """(status, content type, body) of one form-encoded call, as the wire carried them."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(
            f"{slack.url}{method}",
            data=params,
            headers={"Authorization": f"Bearer {slack.bot_token}"},
        ) as response,
    ):
        content_type = response.headers.get("Content-Type")
        return response.status, content_type, await response.text()


# -- fail: a raw HTTP answer -----------------------------------------------------------------


async def test_fail_answers_an_html_error_page_and_applies_nothing(slack: SlackStandIn) -> None:
    slack.faults.fail("chat.postMessage")

    status, content_type, body = await raw_post(slack, "chat.postMessage", channel="C0MANAGERS", text="hi")

    assert (status, content_type, body) == (500, "text/html", GATEWAY_ERROR_PAGE)
    assert slack.messages("C0MANAGERS") == []
    (call,) = slack.calls("chat.postMessage")
    assert (call.fault, call.http_status, call.ok, call.applied, call.injected) == (
        "fail",
        500,
        False,
        False,
        True,
    )
    assert slack.rejected_calls() == []  # a fault is not a refusal of what the bot sent
    assert slack.faulted_calls() == [call]


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (502, "text/plain", "upstream connect error or disconnect/reset before headers"),
        (503, None, ""),
        (500, "application/json", '{"ok": false, "error": "fatal_error"}'),
        (200, "text/html", "<html><body>Slack is down</body></html>"),
    ],
)
async def test_fail_sends_any_body_byte_for_byte(
    slack: SlackStandIn, status: int, content_type: str | None, body: str
) -> None:
    slack.faults.fail("chat.postMessage", status=status, content_type=content_type, body=body)

    seen = await raw_post(slack, "chat.postMessage", channel="C0MANAGERS", text="hi")

    assert seen == (status, content_type, body)
    assert slack.messages("C0MANAGERS") == []


async def test_fail_can_even_claim_success_without_doing_the_work(slack: SlackStandIn) -> None:
    slack.faults.fail("chat.postMessage", status=200, content_type="application/json", body='{"ok": true}')

    answer = await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="hi")

    assert answer.data == {"ok": True}  # no ts: a bot that needs one must not assume it is there
    assert slack.messages("C0MANAGERS") == []


@pytest.mark.parametrize(
    ("content_type", "body", "shown"),
    [
        ("text/html", GATEWAY_ERROR_PAGE, "{}"),
        ("text/plain", "upstream connect error", "upstream connect error"),
        (None, "", "{}"),
    ],
)
async def test_slack_sdk_raises_on_raw_error_pages(
    slack: SlackStandIn, content_type: str | None, body: str, shown: str
) -> None:
    slack.faults.fail("chat.postMessage", status=502, content_type=content_type, body=body)

    with pytest.raises(SlackApiError) as caught:
        await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="hi")

    assert caught.value.response.status_code == 502
    assert f"The server responded with: {shown}" in str(caught.value)


# -- error: a Slack error code ---------------------------------------------------------------


async def test_error_answers_a_slack_error_without_applying(slack: SlackStandIn) -> None:
    slack.faults.error("conversations.create", "internal_error")

    with pytest.raises(SlackApiError) as caught:
        await no_retries(slack).conversations_create(name="inc-1")

    assert caught.value.response.status_code == 200
    assert caught.value.response.data == {"ok": False, "error": "internal_error"}
    assert slack.channel_by_name("inc-1") is None
    (call,) = slack.faulted_calls("conversations.create")
    assert (call.error, call.injected, call.applied) == ("internal_error", True, False)


async def test_error_as_a_rate_limit_with_retry_after(slack: SlackStandIn) -> None:
    slack.faults.error("chat.update", "ratelimited", status=429, retry_after=1)

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{slack.url}chat.update",
            data={"channel": "C0MANAGERS", "ts": "1.0", "text": "v2"},
            headers={"Authorization": f"Bearer {slack.bot_token}"},
        ) as response,
    ):
        body = await response.json()

    assert (response.status, response.headers["Retry-After"]) == (429, "1")
    assert body == {"ok": False, "error": "ratelimited"}
    (call,) = slack.faulted_calls("chat.update")
    assert (call.http_status, call.error) == (429, "ratelimited")


async def test_slack_sdk_sees_the_retry_after_header(slack: SlackStandIn) -> None:
    slack.faults.error("chat.postMessage", "ratelimited", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as caught:
        await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="hi")

    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response.data["error"] == "ratelimited"


# -- countdown, match, clear -----------------------------------------------------------------


async def test_a_fault_answers_the_next_n_calls_then_disarms(slack: SlackStandIn) -> None:
    client = no_retries(slack)
    fault = slack.faults.error("chat.postMessage", "service_unavailable", times=2)

    outcomes = []
    for n in range(3):
        try:
            await client.chat_postMessage(channel="C0MANAGERS", text=f"attempt {n}")
            outcomes.append("ok")
        except SlackApiError as error:
            outcomes.append(error.response["error"])

    assert outcomes == ["service_unavailable", "service_unavailable", "ok"]
    assert [m.text for m in slack.messages("C0MANAGERS")] == ["attempt 2"]
    assert (fault.fired, fault.remaining, slack.faults.armed()) == (2, 0, [])
    assert [c.fault for c in slack.calls("chat.postMessage")] == ["error", "error", None]


async def test_faults_of_one_method_leave_other_methods_alone(slack: SlackStandIn) -> None:
    slack.faults.fail("chat.update")

    posted = await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="hi")

    assert posted["ok"] is True
    assert len(slack.faults.armed("chat.update")) == 1


async def test_match_targets_only_calls_whose_arguments_fit(slack: SlackStandIn) -> None:
    client = no_retries(slack)
    slack.faults.fail("chat.postMessage", times=None, match=lambda params: params["channel"] == "C0MANAGERS")

    for _ in range(2):
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel="C0MANAGERS", text="stakeholders")
    await client.chat_postMessage(channel="C0GENERAL", text="everyone")

    assert slack.messages("C0MANAGERS") == []
    assert [m.text for m in slack.messages("C0GENERAL")] == ["everyone"]
    assert len(slack.faulted_calls()) == 2


async def test_match_sees_json_bodies_as_objects(slack: SlackStandIn) -> None:
    # slack_sdk posts chat.postMessage as JSON, so blocks arrive as a list, not a string.
    slack.faults.error("chat.postMessage", match=lambda params: isinstance(params.get("blocks"), list))

    await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="plain")
    with pytest.raises(SlackApiError):
        await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="x", blocks=[{"type": "divider"}])

    assert [m.text for m in slack.messages("C0MANAGERS")] == ["plain"]


async def test_faults_fire_in_the_order_they_were_armed(slack: SlackStandIn) -> None:
    client = no_retries(slack)
    slack.faults.error("chat.postMessage", "first")
    slack.faults.error("chat.postMessage", "second")

    errors = []
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C0MANAGERS", text="hi")
        errors.append(caught.value.response["error"])

    assert errors == ["first", "second"]


async def test_clear_disarms_everything_or_one_method(slack: SlackStandIn) -> None:
    slack.faults.fail("chat.postMessage", times=None)
    slack.faults.fail("chat.update", times=None)

    slack.faults.clear("chat.update")
    assert [f.method for f in slack.faults.armed()] == ["chat.postMessage"]
    slack.faults.clear()
    posted = await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="hi")

    assert posted["ok"] is True
    assert slack.faults.armed() == []


def test_nonsense_faults_are_refused() -> None:
    faults = Faults()
    with pytest.raises(ValueError):
        faults.fail("chat.postMessage", times=0)
    with pytest.raises(ValueError):
        faults.fail("chat.postMessage", status=1000)
    with pytest.raises(ValueError):
        faults.hang("chat.postMessage", -1)


# -- hang: a late answer ---------------------------------------------------------------------


async def test_hang_not_applied_times_the_client_out_and_does_nothing(slack: SlackStandIn) -> None:
    slack.faults.hang("chat.postMessage", 30)

    with pytest.raises(TimeoutError):
        await raw_post(slack, "chat.postMessage", timeout=0.2, channel="C0MANAGERS", text="hi")

    assert slack.messages("C0MANAGERS") == []
    (call,) = slack.faulted_calls()
    assert (call.fault, call.applied, call.injected) == ("hang", False, True)


async def test_hang_not_applied_ends_in_a_gateway_timeout_for_a_patient_client(
    slack: SlackStandIn,
) -> None:
    slack.faults.hang("chat.postMessage", 0.05)

    status, content_type, body = await raw_post(slack, "chat.postMessage", channel="C0MANAGERS", text="hi")

    assert (status, content_type) == (504, "text/html")
    assert "Gateway Time-out" in body
    assert slack.messages("C0MANAGERS") == []


async def test_hang_applied_does_the_work_but_the_answer_comes_too_late(slack: SlackStandIn) -> None:
    slack.faults.hang("conversations.create", 30, applied=True)

    with pytest.raises(TimeoutError):
        await raw_post(slack, "conversations.create", timeout=0.2, name="inc-7")

    created = slack.channel_by_name("inc-7")
    assert created is not None and created.creator == slack.bot.user_id
    (call,) = slack.faulted_calls()
    assert (call.fault, call.ok, call.applied, call.injected) == ("hang", True, True, False)
    assert call.response["channel"]["id"] == created.id  # the answer the bot never read


async def test_hang_applied_answers_late_to_a_patient_client(slack: SlackStandIn) -> None:
    slack.faults.hang("chat.postMessage", 0.1, applied=True)

    started = time.monotonic()
    posted = await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="hi")

    assert time.monotonic() - started >= 0.1
    assert posted["ts"] == slack.messages("C0MANAGERS")[0].ts


async def test_a_refused_call_stays_refused_when_its_answer_is_held(slack: SlackStandIn) -> None:
    slack.faults.hang("chat.postMessage", 0.01, applied=True)

    with pytest.raises(SlackApiError):
        await no_retries(slack).chat_postMessage(channel="C9NOPE", text="hi")

    (call,) = slack.rejected_calls()  # a real refusal, whatever the fault did to its timing
    assert (call.error, call.fault, call.applied) == ("channel_not_found", "hang", False)


async def test_slack_sdk_timeout_on_a_held_answer(slack: SlackStandIn) -> None:
    slack.faults.hang("chat.postMessage", 30, applied=True)
    client = no_retries(slack, timeout=0.2)  # slack_sdk hands this to aiohttp.ClientTimeout

    with pytest.raises(TimeoutError):
        await client.chat_postMessage(channel="C0MANAGERS", text="hi")

    assert len(slack.messages("C0MANAGERS")) == 1


async def test_stopping_the_stand_in_releases_held_answers(clock: FakeClock) -> None:
    slack = SlackStandIn(responders=(), clock=clock)
    await slack.start()
    slack.faults.hang("chat.postMessage", 60)
    pending = asyncio.ensure_future(
        raw_post(slack, "chat.postMessage", timeout=5, channel="C0MANAGERS", text="hi")
    )
    await asyncio.sleep(0.05)

    started = time.monotonic()
    await slack.stop()
    await asyncio.gather(pending, return_exceptions=True)

    assert time.monotonic() - started < 1.0


# -- close_connection: a lost answer ---------------------------------------------------------


async def test_close_connection_not_applied(slack: SlackStandIn) -> None:
    slack.faults.close_connection("chat.postMessage")

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await raw_post(slack, "chat.postMessage", channel="C0MANAGERS", text="hi")

    assert slack.messages("C0MANAGERS") == []
    (call,) = slack.faulted_calls()
    assert (call.fault, call.http_status, call.applied, call.injected) == (
        "close_connection",
        None,
        False,
        True,
    )


async def test_close_connection_applied_loses_the_answer_to_work_that_was_done(
    slack: SlackStandIn,
) -> None:
    slack.faults.close_connection("chat.postMessage", applied=True)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await no_retries(slack).chat_postMessage(channel="C0MANAGERS", text="SEV1 declared")

    (message,) = slack.messages("C0MANAGERS")
    assert message.text == "SEV1 declared"
    (call,) = slack.calls("chat.postMessage")
    assert (call.fault, call.ok, call.applied, call.injected) == ("close_connection", True, True, False)


async def test_slack_sdk_retries_a_lost_answer_and_posts_twice(slack: SlackStandIn) -> None:
    # slack_sdk's default retry handler retries connection errors: after a lost answer to work
    # that was done, a blind retry duplicates the post.
    retry = AsyncConnectionErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.url, retry_handlers=[retry])
    slack.faults.close_connection("chat.postMessage", applied=True)

    posted = await client.chat_postMessage(channel="C0MANAGERS", text="SEV1 declared")

    assert posted["ok"] is True
    assert [m.text for m in slack.messages("C0MANAGERS")] == ["SEV1 declared", "SEV1 declared"]
    assert [c.fault for c in slack.calls("chat.postMessage")] == ["close_connection", None]


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_calls_consume_a_fault_exactly_times_over(slack: SlackStandIn) -> None:
    client = no_retries(slack)
    slack.faults.error("chat.postMessage", "internal_error", times=3)

    results = await asyncio.gather(
        *(client.chat_postMessage(channel="C0MANAGERS", text=f"n{n}") for n in range(12)),
        return_exceptions=True,
    )

    assert sum(isinstance(r, SlackApiError) for r in results) == 3
    assert len(slack.messages("C0MANAGERS")) == 9
    assert len(slack.faulted_calls()) == 3


def test_faults_count_down_atomically_across_threads() -> None:
    faults = Faults()
    fault = faults.fail("chat.postMessage", times=500)
    taken: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = sum(faults.take("chat.postMessage", {}) is not None for _ in range(200))
        with lock:
            taken.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(taken) == 500
    assert (fault.fired, fault.remaining, faults.armed()) == (500, 0, [])
