"""The printed report: figures side by side, each target next to its figure, and for every
missed target the evidence the run collected about why. Pure: results in, text out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.stats import ratio

JsonDict = dict[str, Any]

ACK_P99_RATIO = 1.5
ROUND_TRIPS_PER_TICK = 2
WEB_API_CALLS_PER_TICK = 1
BURST_CHAT_UPDATES = 10
START_TO_SERVING_S = 3.0
REMINDER_LATENESS_MS = 1000.0


DELIVERY = {
    "inline": "in the process that acks (`incident-bot run`), on the same event loop",
    "process": "in its own process (`incident-bot deliver`); the HTTP process runs `--delivery none`",
}


@dataclass(frozen=True)
class Verdict:
    target: str
    figure: str
    met: bool
    why: list[str]


def _mark(met: bool) -> str:
    return "met" if met else "MISSED"


def _fmt_latency(figures: JsonDict) -> str:
    return f"{figures['p50']:7.2f} {figures['p95']:7.2f} {figures['p99']:7.2f} {figures['throughput']:7.0f}"


def _fmt_bot_cpu(bot: JsonDict) -> str:
    """The bot's CPU per request, split by process when delivery runs in its own."""
    text = f"{bot['cpu_ms_per_request']:.2f}"
    by_process = bot.get("cpu_ms_per_request_by_process", {})
    if len(by_process) > 1:
        text += " (" + " + ".join(f"{name} {ms:.2f}" for name, ms in by_process.items()) + ")"
    return text


def latency_section(
    latency: JsonDict, verdicts: list[Verdict], accounting: JsonDict, delivery: str
) -> list[str]:
    lines = [
        "1. ACK LATENCY (ms, client side: signed request sent -> HTTP response read) AND THROUGHPUT (req/s)",
        f"   start to serving, empty Redis: floor {latency['start_to_serving_empty']['floor']:.2f} s, "
        f"bot {latency['start_to_serving_empty']['bot']:.2f} s",
        "",
        "   Both servers pay Bolt's ack polling: its asyncio listener runner checks for ack() every 10 ms",
        "   (asyncio.sleep(0.01) in slack_bolt/listener/asyncio_runner.py): the ~10-15 ms p50 floor.",
        "",
        "   kind     conc |   floor p50     p95     p99   req/s |     bot p50     p95     p99   req/s "
        "| bot p99 vs target (1.5x floor p99)  | CPU ms/req floor, bot (incl. after-ack work)",
    ]
    for kind, label in (("commands", "command"), ("ticks", "tick")):
        for level in latency[kind]:
            floor, bot = level["floor"], level["bot"]
            r = ratio(bot["p99"], floor["p99"])
            target = ACK_P99_RATIO * floor["p99"]
            met = r <= ACK_P99_RATIO
            errors = {k: v for k, v in bot["statuses"].items() if k != "200"}
            lines.append(
                f"   {label:8} {level['concurrency']:4} | {_fmt_latency(floor)} | {_fmt_latency(bot)} "
                f"| {bot['p99']:7.2f} <= {target:7.2f} {r:5.2f}x {_mark(met):6} "
                f"| {floor['cpu_ms_per_request']:.2f}, {_fmt_bot_cpu(bot)}"
                + (f"  non-200: {errors}" if errors else "")
            )
            why = []
            if not met:
                why = _ack_reasons(kind, level, accounting, latency.get("bot_log_warnings", {}), delivery)
            verdicts.append(
                Verdict(
                    f"{label} ack p99 at concurrency {level['concurrency']} <= 1.5x floor",
                    f"{bot['p99']:.2f} ms vs target {target:.2f} ms (floor {floor['p99']:.2f} ms): {r:.2f}x",
                    met,
                    why,
                )
            )
    for level in latency["commands"]:
        refused = refused_declares(level["bot"])
        if refused:
            lines.append(
                f"   c={level['concurrency']}: {refused} of {level['requests']} declares were NOT declared; "
                f"the bot acked: {[k for k in level['bot']['bodies'] if 'declared' not in k]}"
            )
    lines += [
        "",
        "   declares: from reading the ack to the last checklist message in the stand-in; Web API calls",
    ]
    for level in latency["commands"]:
        bot = level["bot"]
        lines.append(
            f"     c={level['concurrency']:<3} {_fmt_checklists(bot['ack_to_last_checklist'])}; "
            f"{bot['web_api_calls_per_request']} calls per declare "
            f"{bot['web_api_calls_per_request_by_method']}"
        )
    ticks = latency["ticks"]
    lines.append(
        "   Web API calls per tick under load (all methods): "
        + ", ".join(f"c={t['concurrency']}: {t['bot']['web_api_calls_per_request']}" for t in ticks)
        + f"  (ticks spread over {ticks[0]['messages']} checklist messages per level)"
    )
    if latency.get("bot_log_warnings"):
        lines.append(f"   bot log warnings: {latency['bot_log_warnings']}")
    return lines


def _fmt_checklists(figures: JsonDict) -> str:
    timed = figures["ms"]
    if timed is None:
        return f"no declare got all its checklists ({figures['declares']} declared)"
    text = f"p50 {timed['p50']:.0f} ms, p99 {timed['p99']:.0f} ms, max {timed['max']:.0f} ms"
    if figures["incomplete"]:
        text += f" ({figures['incomplete']} of {figures['declares']} without all their checklists)"
    return text


def refused_declares(bot: JsonDict) -> int:
    """Acks of /incident sevN that did not say the incident was declared."""
    return sum(n for body, n in bot.get("bodies", {}).items() if "declared" not in body)


def _ack_reasons(
    kind: str, level: JsonDict, accounting: JsonDict, warnings: JsonDict, delivery: str
) -> list[str]:
    floor, bot = level["floor"], level["bot"]
    reasons = []
    refused = refused_declares(bot) if kind == "commands" else 0
    if refused:
        reasons.append(
            f"{refused} of {level['requests']} declares were refused (fast acks that flatter the figures)"
            + (
                ": the bot log says 'store unavailable: Too many connections', i.e. redis-py's async "
                "pool (100 connections by default) raising at once instead of waiting, not Redis down"
                if any("Too many connections" in w for w in warnings)
                else "; see the bot log"
            )
        )
    where = (
        "One event loop acks and delivers, so queued delivery work delays acks."
        if delivery == "inline"
        else "Delivery runs in its own process, which still takes its share of the two cores."
    )
    reasons += [
        f"bot CPU per request {_fmt_bot_cpu(bot)} ms (incl. its after-ack work) vs "
        f"floor {floor['cpu_ms_per_request']:.2f} ms; at {bot['cpu_ms_per_request_until_ack_run_ended']:.2f} "
        f"ms while the acks were running. {where}",
    ]
    if kind == "commands":
        declare = accounting["declare"]
        example = declare["example"]
        reasons.append(
            f"a declare waits for {declare['round_trips_before_ack']} Redis round trips before it acks "
            f"({' | '.join(example['round_trips_before_ack'])}); the floor waits for none."
        )
        loop = "on the same loop" if delivery == "inline" else "in the delivery process"
        reasons.append(
            f"each declare then runs, {loop}, {declare['web_api_calls']} Web API calls "
            f"({declare['web_api_calls_by_method']}) and {declare['round_trips_after_ack']} more round "
            "trips, building Block Kit with pydantic/slack_sdk models."
        )
    else:
        tick = accounting["spaced_ticks"]
        reasons.append(
            f"a tick waits for {tick['round_trips_before_ack']} Redis round trip(s) before it acks "
            f"({' | '.join(tick['example']['round_trips_before_ack'])}), and parses the whole message "
            "payload into pydantic models (CheckboxClick, ItemRef) first; after the ack, each refresh "
            "re-renders the message and calls chat.update on the same loop."
        )
    reasons.append(
        f"where the bot's CPU goes: `python -m bench.profile --py-spy PATH --kind "
        f"{'declare' if kind == 'commands' else 'tick'} --concurrency {level['concurrency']}`"
    )
    if level["concurrency"] > 1:
        reasons.append(
            "with 2 CPUs shared by the load client, the bot, redis-server and the stand-in, the bot's "
            "extra CPU per request shows up directly as queueing at higher concurrency."
        )
    return reasons


def accounting_section(accounting: JsonDict, verdicts: list[Verdict], recheck_s: float) -> list[str]:
    declare, spaced, burst = accounting["declare"], accounting["spaced_ticks"], accounting["burst"]
    idle = accounting["idle_second"]
    lines = [
        "2. REDIS ROUND TRIPS AND COMMANDS, WEB API CALLS",
        "   Round trips are counted by a proxy in front of Redis (a pipeline or MULTI..EXEC written at",
        "   once is one); commands come from INFO commandstats deltas after CONFIG RESETSTAT, less what",
        "   the proxy saw of the reminder and delivery polls (each one EVALSHA running one ZRANGEBYSCORE",
        "   every 0.25 s while nothing is due), the delivery heartbeat and connection setup.",
        "   commandstats also counts what a Lua script runs.",
        f"   idle calibration, 1 s: commandstats {idle['commandstats']}; after subtracting the poll: "
        f"{idle['left_after_subtracting_background'] or 'nothing'}",
        "",
        f"   per declare (/incident sev3, {declare['count']} one at a time, each left to finish):",
        f"     round trips: {declare['round_trips_before_ack']} before the ack + "
        f"{declare['round_trips_after_ack']} after = {declare['round_trips']}; "
        f"commands sent {declare['commands_sent']}; "
        f"executed (commandstats) {declare['commands_per_declare']}",
        f"     commandstats per declare: {declare['commandstats_per_declare']}",
        f"     before ack: {' | '.join(declare['example']['round_trips_before_ack'])}",
        f"     after ack:  {' | '.join(declare['example']['round_trips_after_ack'])}",
        f"     Web API calls per declare: {declare['web_api_calls']} {declare['web_api_calls_by_method']}",
        f"     ack of a lone declare (through the counting proxy): p50 {declare['ack_ms_p50']:.2f} ms",
        "",
        f"   per tick, spaced {spaced['spacing_s']:.2f} s apart (> refresh interval), "
        f"{spaced['count']} ticks:",
        f"     round trips: {spaced['round_trips_before_ack']} before the ack + "
        f"{spaced['round_trips_after_ack']} after = {spaced['round_trips']}   "
        f"(target <= {ROUND_TRIPS_PER_TICK})",
        f"     before ack: {' | '.join(spaced['example']['round_trips_before_ack'])}; "
        f"after ack: {' | '.join(spaced['example']['round_trips_after_ack'])}",
        f"     and once after the last tick, the delivery loop's look at the message {recheck_s:.0f} s "
        "later (in case its re-render failed): "
        f"{' | '.join(spaced['recheck_after_last_tick']) or 'nothing'}",
        f"     commands sent {spaced['commands_sent']}; executed (commandstats, the look included) "
        f"{spaced['commands_per_tick']}: {spaced['commandstats_per_tick']}",
        f"     Web API calls per tick: {spaced['web_api_calls']} {spaced['web_api_calls_by_method']}   "
        f"(target <= {WEB_API_CALLS_PER_TICK})",
        "",
        f"   burst: {burst['clicks']} clicks in {burst['sent_within_s']:.2f} s on one message of "
        f"{burst['items_on_message']} items, 3 users, stale clients:",
        f"     acks {burst['acks']}, ack p50/p99/max {burst['ack_ms']['p50']:.1f}/"
        f"{burst['ack_ms']['p99']:.1f}/{burst['ack_ms']['max']:.1f} ms",
        f"     chat.update calls for the message: {burst['chat_update_calls']} "
        f"(target <= {BURST_CHAT_UPDATES}), rejected {burst['chat_update_rejected']}, last one "
        f"{burst['last_update_after_burst_start_s']} s after the burst began",
        f"     Web API calls: {burst['web_api_calls']}; round trips per tick "
        f"{burst['round_trips_per_tick']}: {burst['round_trips']}",
        f"     final message shows exactly what Redis holds: {burst['shown_equals_stored']} "
        f"(ticked: shown {len(burst['final_shown_ticked'])}, stored {len(burst['final_stored_ticked'])}); "
        f"stored state matches the click order: {burst['stored_equals_click_order']}",
    ]
    rt_met = spaced["round_trips"] <= ROUND_TRIPS_PER_TICK
    verdicts.append(
        Verdict(
            "<= 2 Redis round trips per tick",
            f"{spaced['round_trips']} spaced, {burst['round_trips_per_tick']} in a burst",
            rt_met,
            [] if rt_met else [f"round trips of a tick: {spaced['example']}"],
        )
    )
    api_met = spaced["web_api_calls"] <= WEB_API_CALLS_PER_TICK
    verdicts.append(
        Verdict(
            "<= 1 Web API call per tick outside bursts",
            f"{spaced['web_api_calls']} {spaced['web_api_calls_by_method']}",
            api_met,
            [] if api_met else [f"calls per tick by method: {spaced['web_api_calls_by_method']}"],
        )
    )
    burst_met = burst["chat_update_calls"] <= BURST_CHAT_UPDATES
    verdicts.append(
        Verdict(
            "<= 10 chat.update for a 50-tick burst",
            f"{burst['chat_update_calls']}",
            burst_met,
            []
            if burst_met
            else [
                "the refresher sends at most one chat.update per message every refresh interval; a burst "
                f"spread over {burst['sent_within_s']:.2f} s therefore needs about "
                f"{burst['sent_within_s']:.1f}/interval + 1 updates"
            ],
        )
    )
    consistent = bool(burst["shown_equals_stored"])
    verdicts.append(
        Verdict(
            "after the burst the message shows exactly the ticks stored in Redis",
            f"{consistent}",
            consistent,
            []
            if consistent
            else [f"shown {burst['final_shown_ticked']} vs stored {burst['final_stored_ticked']}"],
        )
    )
    return lines


def scale_section(scale: JsonDict, latency: JsonDict, verdicts: list[Verdict]) -> list[str]:
    memory = scale["memory"]
    lines = [
        f"3. WITH {scale['incidents']:,} OPEN INCIDENTS IN REDIS",
        f"   seeded through the service in {scale['seed_seconds']} s (declare, channel, header, checklists); "
        f"open index {scale['open_index_size']}, schedule {scale['schedule_size']} members",
        f"   start to serving (/healthz 200), 3 starts: {scale['start_to_serving']} s   "
        f"(empty Redis: {latency['start_to_serving_empty']['bot']:.2f} s; "
        f"target < {START_TO_SERVING_S:.0f} s)",
    ]
    worst_start = max(scale["start_to_serving"])
    start_met = worst_start < START_TO_SERVING_S
    verdicts.append(
        Verdict(
            "start to serving < 3 s with 10,000 open incidents",
            f"worst of 3: {worst_start:.2f} s",
            start_met,
            []
            if start_met
            else [
                f"the same start with an empty Redis takes {latency['start_to_serving_empty']['bot']:.2f} s: "
                "start-up does not read incidents, so the time is imports and process start"
            ],
        )
    )
    for key, label in (("reminders_spread", "spread over 2 s"), ("reminders_at_once", "all due at once")):
        run = scale[key]
        lateness = run.get("lateness_ms")
        if lateness is None:
            lines.append(f"   reminders {label}: none posted of {run['scheduled']}")
            verdicts.append(Verdict(f"reminder lateness < 1 s ({label})", "none posted", False, []))
            continue
        lines.append(
            f"   reminder lateness, {run['scheduled']} {label}: p50 {lateness['p50']:.0f} ms, "
            f"p99 {lateness['p99']:.0f} ms, max {lateness['max']:.0f} ms; posted {run['posted']}/"
            f"{run['scheduled']}, first to last post at {run['delivery_rate_per_s']} reminders/s"
        )
        met = lateness["max"] < REMINDER_LATENESS_MS and run["posted"] == run["scheduled"]
        why = []
        if not met:
            why = [
                f"reminders went out at about {run['delivery_rate_per_s']} per second: each reminder poll "
                "claims at most 100 due reminders and queues each into its incident's outbox; the delivery "
                "loop then claims at most 50 incidents per pass and posts for 16 at a time (lock, outbox, "
                "in-doubt record, chat.postMessage, completion, unlock); "
                f"{run['scheduled']} due within {run['spread_s']} s need "
                f"{run['scheduled'] / (run['delivery_rate_per_s'] or 1):.1f} s of delivery",
                "APScheduler skipped polls while one was still running: "
                f"{scale['apscheduler_skipped_polls']} times",
            ]
        verdicts.append(
            Verdict(
                f"reminder lateness < 1 s ({label})",
                f"p50 {lateness['p50']:.0f} ms, p99 {lateness['p99']:.0f} ms, max {lateness['max']:.0f} ms",
                met,
                why,
            )
        )
    lines += [
        f"   Redis memory: used_memory delta / {scale['incidents']:,} = "
        f"{scale['used_memory_delta_per_incident']} B per incident (own keys, indexes, schedule, "
        "allocator overhead)",
        f"   MEMORY USAGE of an incident's own keys (sample {memory['sample']}): opened, nothing ticked "
        f"{memory['opened_bytes_mean']} B {memory['opened_bytes_by_severity']}; every item ticked "
        f"{memory['ticked_bytes_mean']} B {memory['ticked_bytes_by_severity']}",
        f"   share of the global keys per incident: {memory['shared_bytes_per_incident_total']} B "
        f"{memory['shared_bytes_per_incident']}",
    ]
    if scale.get("bot_log_warnings"):
        lines.append(f"   bot log warnings: {scale['bot_log_warnings']}")
    return lines


def render_report(results: JsonDict) -> str:
    env = results["environment"]
    verdicts: list[Verdict] = []
    lines = [
        "",
        "=" * 110,
        f"incident-bot benchmark  ·  {env['cpus']} CPUs, Python {env['python']}, private Redis "
        f"{env['redis']}, refresh interval {env['refresh_interval_s']} s, reminder poll "
        f"{env['reminder_poll_s']} s",
        "The bot, the floor (a bare Bolt app that only acks, on the same Starlette/uvicorn stack), the",
        "load client and redis-server each run in their own process; the Slack stand-in runs in the bench",
        "process.",
        f"Delivery: {DELIVERY[env['delivery']]}; HTTP worker processes: {env['bot_workers']}.",
        "=" * 110,
        "",
    ]
    lines += latency_section(results["latency"], verdicts, results["accounting"], env["delivery"])
    lines.append("")
    lines += accounting_section(results["accounting"], verdicts, env["recheck_after_tick_s"])
    lines.append("")
    lines += scale_section(results["scale"], results["latency"], verdicts)
    lines += ["", "TARGETS"]
    for verdict in verdicts:
        lines.append(f"   [{_mark(verdict.met):6}] {verdict.target}: {verdict.figure}")
        for reason in verdict.why:
            lines.append(f"            why: {reason}")
    lines += ["", "FIGURES WITHOUT A TARGET"]
    for level in results["latency"]["commands"]:
        bot = level["bot"]
        lines.append(
            f"   declare at concurrency {level['concurrency']}: ack to last checklist in the stand-in "
            f"{_fmt_checklists(bot['ack_to_last_checklist'])}; Web API calls per declare "
            f"{bot['web_api_calls_per_request']}"
        )
    lines += [
        "",
        f"Web API calls the stand-in rejected: {results['rejected_web_api_calls']}.  "
        f"Run took {results['elapsed_s']} s ({results.get('phase_seconds')}); process logs in {env['logs']}",
    ]
    return "\n".join(lines)
