"""The postmortem draft: what was recorded during the incident, as GitHub-flavoured Markdown for
the team to finish ("Document and prevent recurrence"). Pure: no I/O, no settings.

People are shown by name (Markdown files do not render Slack mentions). Text people typed is
decoded from Slack's entities and Markdown-escaped where it would break the layout; every list
item is one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.blocks import format as fmt
from bot.blocks.changes import more_changes
from bot.blocks.hypotheses import CHANGED_VERB
from bot.blocks.timeline import trace_lines
from bot.changes import ChangeEvent
from bot.models import (
    PHASE_GUIDE,
    AlertNote,
    ChartNote,
    ChecklistMessage,
    EventKind,
    Hypothesis,
    Incident,
    Phase,
    Severity,
    Status,
    Tick,
    TimelineEvent,
    format_duration,
)

SECTIONS = (
    "Summary",
    "Impact",
    "Timeline",
    "Evidence",
    "Hypotheses",
    "Root cause",
    "Mitigations and checklist items done",
    "Verification",
    "Follow-ups",
    "What went well",
    "What went wrong",
)
# What would start emphasis, code, a link, HTML, a table cell, strikethrough or an entity.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_PERMALINK = re.compile(r"https://[^\s<>|()\[\]]+")
_LINK = re.compile(r"https?://[^\s<>|()\[\]]+")  # a link that can go in `[text](url)` as it is
_CONTINUED = " (continued)"
  # the title of a checklist section split across messages

Names = Callable[[str | None], str]


def postmortem_markdown(
    incident: Incident,
    spec_label: Callable[[Severity], str],
    events: list[TimelineEvent],
    messages: list[ChecklistMessage],
    ticks: dict[str, Tick],
    names: Names,
    role_labels: dict[str, str],
) -> str:
    """The draft, `# INC-7 postmortem: <title>` then the `SECTIONS` in order (`##` headings);
    the same input gives the same text. `names(user)` shows a person (None: the bot);
    `role_labels` maps a role key to its label; `ticks` maps an item id to its tick."""
    md = _Markdown(names, incident.declared_at)
    bodies = {
        "Summary": _summary(incident, spec_label, events, role_labels, md),
        "Impact": _impact(incident, md),
        "Timeline": _timeline(events, messages, names),
        "Evidence": _evidence(incident, spec_label, events, md),
        "Hypotheses": _hypotheses(incident, md),
        "Root cause": _root_cause(incident, md),
        "Mitigations and checklist items done": _done(messages, ticks, md),
        "Verification": _verification(messages, ticks, md),
        "Follow-ups": _followups(incident, md),
    }
    parts = [f"# {incident.id} postmortem: {md.text(incident.title)}"]
    for heading in SECTIONS:
        body = bodies.get(heading)
        parts.append(f"## {heading}\n\n{body}" if body else f"## {heading}")
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class _Markdown:
    """How people, text and times are written in the draft."""

    names: Names
    day: datetime  # times on this day are written without the date

    def text(self, stored: str) -> str:
        """Stored text (safe mrkdwn, or as typed) as one line of escaped Markdown."""
        return escape_markdown(fmt.one_line(fmt.plain(stored, self.names)))

    def person(self, user: str | None) -> str:
        return escape_markdown(fmt.one_line(self.names(user)))

    def at(self, at: datetime) -> str:
        return fmt.clock(at) if at.date() == self.day.date() else fmt.stamp(at)

    def by_at(self, user: str | None, at: datetime) -> str:
        return f"{self.person(user)}, {self.at(at)}"


def escape_markdown(text: str) -> str:
    """Backslash before each character that would start Markdown markup in running text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _summary(
    incident: Incident,
    spec_label: Callable[[Severity], str],
    events: list[TimelineEvent],
    role_labels: dict[str, str],
    md: _Markdown,
) -> str:
    changes = [e for e in events if e.kind is EventKind.SEVERITY_CHANGED]
    severity = f"- **Severity:** {escape_markdown(spec_label(incident.severity))}"
    if changes:
        severity += f", changed {len(changes)} time{'' if len(changes) == 1 else 's'}:"
        severity += "".join(f"\n  - {md.by_at(e.by, e.at)}: {md.text(e.text)}" for e in changes)
    else:
        severity += " (unchanged since declared)"
    roles = "; ".join(
        f"{escape_markdown(role_labels.get(role, role))}: {md.person(user)}"
        for role, user in incident.role_holders().items()
    )
    lines = [
        f"- **Title:** {md.text(incident.title)}",
        severity,
        f"- **Roles:** {roles}",
        f"- **Status:** {incident.status.value} · **Phase:** {PHASE_GUIDE[incident.phase][0]}",
        *_milestones(incident, md),
    ]
    return "\n".join(lines)


def _milestones(incident: Incident, md: _Markdown) -> list[str]:
    """Declared, identified, mitigated, resolved: when, and how long after the one before."""
    identified, how = incident.identified()
    reached: list[tuple[str, datetime | None, str]] = [
        ("Identified", identified, how),
        ("Mitigated", incident.status_changed_at.get(Status.MONITORING), "status Monitoring"),
        ("Resolved", incident.status_changed_at.get(Status.RESOLVED), "status Resolved"),
    ]
    lines = [f"- **Declared:** {fmt.stamp(incident.declared_at)} by {md.person(incident.declared_by)}"]
    previous, previous_name = incident.declared_at, "declared"
    for name, at, why in reached:
        if at is None:
            lines.append(f"- **{name}:** not reached")
            continue
        after = f"{fmt.elapsed(at - previous)} after {previous_name}"
        lines.append(f"- **{name}:** {fmt.stamp(at)} ({why}), {after}")
        previous, previous_name = at, name.lower()
    resolved = incident.status_changed_at.get(Status.RESOLVED)
    if resolved is not None:
        lines.append(f"- **Declared to resolved:** {fmt.elapsed(resolved - incident.declared_at)}")
    return lines


def _impact(incident: Incident, md: _Markdown) -> str:
    last = incident.last_update
    if last is None:
        return "No update was posted."
    return (
        f"{md.text(last.impact)}\n\n"
        f"_As of the last update ({last.status.value}), {md.by_at(last.posted_by, last.posted_at)}._"
    )


def _timeline(events: list[TimelineEvent], messages: list[ChecklistMessage], names: Names) -> str:
    if not events:
        return "No events were recorded."
    items = {item.id: item.text for m in messages for s in m.sections for item in s.items}
    lines = trace_lines(events, items, names, plain=True)
    # A fence longer than any run of backticks in the lines, so none of them can close it.
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "Times in UTC.\n\n" + "\n".join([f"{fence}text", *lines, fence])


def _evidence(
    incident: Incident, spec_label: Callable[[Severity], str], events: list[TimelineEvent], md: _Markdown
) -> str:
    """What the bot brought (the alert, the changes before declaring, the charts' latest values),
    each only when there is some, then what people noted and added."""
    brought = []
    if incident.alert is not None:
        brought.append("### Alert\n\n" + _alert(incident.alert, spec_label, md))
    if incident.changes:
        lines = "\n".join(_change(c, md) for c in incident.changes)
        if incident.changes_total > len(incident.changes):
            lines += f"\n- {more_changes(incident.changes_total - len(incident.changes))}"
        brought.append(f"### Changes in the two hours before declaring\n\n{lines}")
    if incident.charts:
        lines = "\n".join(_chart(c, md) for c in incident.charts)
        brought.append(f"### Metrics charts (latest values)\n\n{lines}")
    notes = [f"- {md.by_at(e.by, e.at)}: {md.text(e.text)}" for e in events if e.kind is EventKind.NOTE]
    added = [_added(e, md) for e in events if e.kind is EventKind.EVIDENCE]
    return "".join(f"{part}\n\n" for part in brought) + (
        "### Notes\n\n"
        + ("\n".join(notes) or "None.")
        + "\n\n### Messages added to the timeline\n\n"
        + ("\n".join(added) or "None.")
    )


def _raw(text: str) -> str:
    """Text from outside Slack (an alert, a change event) as one line of escaped Markdown."""
    return escape_markdown(fmt.one_line(text))


def _alert(alert: AlertNote, spec_label: Callable[[Severity], str], md: _Markdown) -> str:
    lines = [
        f"- **Summary:** {_raw(alert.summary)}",
        f"- **Severity it asked for:** {escape_markdown(spec_label(alert.severity))}",
    ]
    if alert.service:
        lines.append(f"- **Service:** {_raw(alert.service)}")
    if alert.started_at is not None:
        lines.append(f"- **Started:** {fmt.stamp(alert.started_at)}")
    if alert.labels:
        labels = ", ".join(f"{_raw(k)}={_raw(v)}" for k, v in sorted(alert.labels.items()))
        lines.append(f"- **Labels:** {labels}")
    if _LINK.fullmatch(alert.link):
        lines.append(f"- **Link:** [the alert's query]({alert.link})")
    return "\n".join(lines)


def _change(change: ChangeEvent, md: _Markdown) -> str:
    """`- 13:02 UTC: checkout deploy v2.3.1 by ci: Bump the pool size ([link](…))`."""
    said = f"- {md.at(change.at)}: {_raw(change.service)} {change.kind.value}"
    if change.version:
        said += f" {_raw(change.version)}"
    if change.by:
        said += f" by {_raw(change.by)}"
    if change.description:
        said += f": {_raw(change.description)}"
    if change.url and _LINK.fullmatch(change.url):
        said += f" ([link]({change.url}))"
    return said


def _chart(chart: ChartNote, md: _Markdown) -> str:
    """`- checkout, the last 1h to 14:05 UTC (INC-7-checkout-metrics.png): Error rate: 0.482`."""
    values = "; ".join(f"{md.text(title)}: {md.text(value)}" for title, value in chart.latest.items())
    shown = f" ({escape_markdown(chart.file)})" if chart.file else ""
    said = f"- {_raw(chart.service)}, the last {format_duration(chart.window)} to {md.at(chart.end)}{shown}"
    return f"{said}: {values}" if values else f"{said}: no data"


def _added(event: TimelineEvent, md: _Markdown) -> str:
    source = []
    if event.author:
        source.append(f"written by {md.person(event.author)}")
    if event.link and _PERMALINK.fullmatch(event.link):
        source.append(f"[message]({event.link})")
    said = f"- {md.by_at(event.by, event.at)}, added: “{md.text(event.text)}”"
    return said + (f" ({', '.join(source)})" if source else "")


def _hypotheses(incident: Incident, md: _Markdown) -> str:
    if not incident.hypotheses:
        return "None were proposed."
    return "\n".join(_hypothesis(h, md) for h in sorted(incident.hypotheses, key=lambda h: h.number))


def _hypothesis(hypothesis: Hypothesis, md: _Markdown) -> str:
    said = f"proposed by {md.by_at(hypothesis.proposed_by, hypothesis.proposed_at)}"
    if hypothesis.changed_by is not None:
        when = f", {md.at(hypothesis.changed_at)}" if hypothesis.changed_at else ""
        said += f"; {CHANGED_VERB[hypothesis.state]} by {md.person(hypothesis.changed_by)}{when}"
    return f"- **{hypothesis.label}** ({hypothesis.state.value}): {md.text(hypothesis.text)} ({said})"


def _root_cause(incident: Incident, md: _Markdown) -> str:
    cause = incident.cause
    if cause is None:
        return "Not determined."
    confirmed = ""
    if cause.changed_by is not None:
        when = f", {md.at(cause.changed_at)}" if cause.changed_at else ""
        confirmed = f" (confirmed by {md.person(cause.changed_by)}{when})"
    return f"**{cause.label}**: {md.text(cause.text)}{confirmed}"


def _grouped(messages: list[ChecklistMessage]) -> dict[str, list[tuple[str, str]]]:
    """Section title -> (item id, text), in the order posted; a section split across messages
    is one group, and an item is listed once."""
    groups: dict[str, list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for message in messages:
        for section in message.sections:
            title = section.title.removesuffix(_CONTINUED)
            for item in section.items:
                if item.id not in seen:
                    seen.add(item.id)
                    groups.setdefault(title, []).append((item.id, item.text))
    return groups


def _ticked(text: str, tick: Tick, md: _Markdown) -> str:
    return f"- [x] {md.text(text)} ({md.by_at(tick.by, tick.at)})"


def _done(messages: list[ChecklistMessage], ticks: dict[str, Tick], md: _Markdown) -> str:
    groups = _grouped([m for m in messages if m.phase is not Phase.VERIFY])
    parts = []
    for title, items in groups.items():
        done = [_ticked(text, ticks[item], md) for item, text in items if item in ticks]
        if done:
            parts.append(f"### {md.text(title)}\n\n" + "\n".join(done))
    return "\n\n".join(parts) or "No checklist items were ticked."


def _verification(messages: list[ChecklistMessage], ticks: dict[str, Tick], md: _Markdown) -> str:
    groups = _grouped([m for m in messages if m.phase is Phase.VERIFY])
    items = [pair for pairs in groups.values() for pair in pairs]
    if not items:
        return "No Verification checklist was posted."
    done = sum(1 for item, _ in items if item in ticks)
    lines = [
        _ticked(text, ticks[item], md) if item in ticks else f"- [ ] {md.text(text)}" for item, text in items
    ]
    return f"{done} done, {len(items) - done} still open.\n\n" + "\n".join(lines)


def _followups(incident: Incident, md: _Markdown) -> str:
    if not incident.followups:
        return "None recorded."
    return "\n".join(f"- {md.text(f.text)} ({md.by_at(f.by, f.at)})" for f in incident.followups)
