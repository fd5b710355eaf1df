"""Every Redis key the bot uses, named in one place.

Per-incident keys carry the incident id as a hash tag (`incident:{INC-42}:ticks`), so all keys
of one incident land in one Redis Cluster slot and can be written in one transaction or script.
"""

from __future__ import annotations

PREFIX = "incident"

# Global keys (each a single key, so each lives in one slot of its own).
SEQUENCE = "incidents:seq"  # INCR -> the next incident number
# STRING: this store's identity, made once; "lost:<id>" once a bot saw it vanish (data loss).
# In the slot of SEQUENCE, so the script that numbers a declaration checks it in the same step.
IDENTITY = "identity:{incidents:seq}"
OPEN = "incidents:open"  # ZSET incident id -> declared at (unix seconds)
BY_CHANNEL = "incidents:by-channel"  # HASH channel id -> incident id
# HASH channel id -> when a declaration claimed that borrowed channel (unix seconds); in the slot
# of BY_CHANNEL (a key without braces hashes whole), so one script writes both.
CLAIMED_AT = "claimed-at:{incidents:by-channel}"
# ZSET resolved incident id -> when it expires (unix seconds; +inf when kept forever): what the
# retention sweep removes from the other indexes once due, and what `export --all-resolved` lists.
RESOLVED = "incidents:resolved"
# ZSET the change events of the last seven days (`POST /events/change`) -> their time (unix s).
CHANGES = "changes"
# STRING: the highest incident number the sweep has checked for a resolved incident without an
# expiry (resolved before retention existed). In the slot of RESOLVED.
RETENTION_CHECKED = "retention-checked:{incidents:resolved}"


def incident(incident_id: str) -> str:
    """STRING: the incident record as JSON."""
    return f"{PREFIX}:{{{incident_id}}}"


def timeline(incident_id: str) -> str:
    """LIST: timeline events as JSON, oldest first."""
    return f"{PREFIX}:{{{incident_id}}}:timeline"


def messages(incident_id: str) -> str:
    """HASH: message ts -> the checklist message posted there, as JSON."""
    return f"{PREFIX}:{{{incident_id}}}:messages"


def items(incident_id: str) -> str:
    """HASH: checklist item id -> ts of the message that carries it."""
    return f"{PREFIX}:{{{incident_id}}}:items"


def ticks(incident_id: str) -> str:
    """HASH: checklist item id -> who ticked it and when, as JSON."""
    return f"{PREFIX}:{{{incident_id}}}:ticks"


def revisions(incident_id: str) -> str:
    """HASH: message ts -> revision, bumped by every change to what that message shows."""
    return f"{PREFIX}:{{{incident_id}}}:revs"


# The reminder schedule, shared by every bot process. One hash tag, so the claim script can
# touch all four keys atomically on a Redis Cluster too. Members are incident ids, plus DIGEST.
SCHEDULE_DUE = "schedule:{reminders}:due"  # ZSET member -> next time it is due (unix seconds)
SCHEDULE_EVERY = "schedule:{reminders}:every"  # HASH member -> repeat interval (seconds)
SCHEDULE_MISSED = "schedule:{reminders}:missed"  # HASH member -> reminders sent since last update
SCHEDULE_CLAIMS = "schedule:{reminders}:claims"  # HASH member -> due time being delivered now
SCHEDULE_KEYS = [SCHEDULE_DUE, SCHEDULE_EVERY, SCHEDULE_MISSED, SCHEDULE_CLAIMS]
DIGEST = "digest"


def outbox(incident_id: str) -> str:
    """HASH: effect id -> the Slack work a change implies, as JSON, until it is delivered."""
    return f"{PREFIX}:{{{incident_id}}}:outbox"


def queued(incident_id: str) -> str:
    """SET: tokens of the reminder claims whose work was queued, so a claim queues once."""
    return f"{PREFIX}:{{{incident_id}}}:queued"


def delivery_lock(incident_id: str) -> str:
    """STRING: the token of the process delivering this incident's outbox now (expires)."""
    return f"{PREFIX}:{{{incident_id}}}:delivering"


def shown(incident_id: str) -> str:
    """HASH: message ts -> the revision that Slack last accepted for that checklist message."""
    return f"{PREFIX}:{{{incident_id}}}:shown"


def incident_keys(incident_id: str) -> list[str]:
    """Every key of one incident that expires with it once it is resolved, the record first (not
    the delivery lock, which expires by itself within a minute)."""
    return [
        incident(incident_id),
        timeline(incident_id),
        messages(incident_id),
        items(incident_id),
        ticks(incident_id),
        revisions(incident_id),
        shown(incident_id),
        outbox(incident_id),
        queued(incident_id),
    ]


# Incidents whose outbox may hold work, and when to look: written before the work itself, so
# a process dying in between leaves only a hint that finds nothing.
OUTBOX_DUE = "outbox:{delivery}:due"  # ZSET incident id -> when to look (unix seconds)


def declare_request(request_id: str) -> str:
    """STRING: the number a declaring request took, so a retried request takes none. In the slot
    of SEQUENCE (a key without braces hashes whole), so one script takes both."""
    return f"request:{{{SEQUENCE}}}:{request_id}"


def process_alive(owner: str) -> str:
    """STRING with a short expiry, renewed by a running bot process: while it exists, the outbox
    locks that process holds are honoured; once it expires (the process died), they may be taken."""
    return f"process:{{{owner}}}:alive"


def change_retry(digest: str) -> str:
    """STRING, expiring after `bot.changes.RETRY_WINDOW`: the change event first stored for a body
    sent without `at`, keyed by a hash of that body (`ReceivedChange.retry_key`), so a retry of
    it is stored once. In the slot of CHANGES (`{changes}`), so one script writes both."""
    return f"change-retry:{{{CHANGES}}}:{digest}"


def alert_group(group_id: str) -> str:
    """STRING: an Alertmanager alert group's record as JSON (`bot.alert_groups.GroupRecord`),
    expiring seven days after the group last notified (`bot.alert_groups.KEPT_FOR`). `group_id`
    is the first 16 hex digits of sha256(groupKey), so each group has a slot of its own."""
    return f"alert:{{{group_id}}}"


def alert_delivery_lock(group_id: str) -> str:
    """STRING: the token of the process posting or updating this group's triage message (expires)."""
    return f"alert:{{{group_id}}}:delivering"


# Alert groups whose triage message or incident notes may need work, and when to look: the same
# hint scheme as OUTBOX_DUE (written before and after each write), for the triage loop.
TRIAGE_DUE = "alerts:{triage}:due"  # ZSET group id -> when to look (unix seconds)


# `IncidentStore.first_request` writes `once:{<name>}` (expiring in seconds) itself.
ONCE_PATTERN = "once:{*}"

# Every key above as a glob pattern (SCAN MATCH syntax; braces are literal there): what
# `incident-bot demo` may delete from a database it ran on, and nothing else. A key added above
# needs its pattern here (tests/unit/test_keys.py checks).
PATTERNS = [
    SEQUENCE,
    IDENTITY,
    OPEN,
    BY_CHANNEL,
    CLAIMED_AT,
    RESOLVED,
    RETENTION_CHECKED,
    CHANGES,
    *SCHEDULE_KEYS,
    OUTBOX_DUE,
    TRIAGE_DUE,
    incident("*") + "*",
    change_retry("*"),
    alert_group("*") + "*",
    declare_request("*"),
    process_alive("*"),
    ONCE_PATTERN,
]

# Set by `incident-bot demo --redis-url` before it writes, deleted once it has deleted its keys:
# keys matching PATTERNS beside it are a demo's (perhaps one that was killed), not a bot's.
DEMO_MARKER = "demo:{incident-bot}:running"
