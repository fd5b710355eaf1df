"""Every exception that crosses a layer, in one place: the store and the service raise them,
the listeners and the delivery loop catch them."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """Redis could not be reached (or kept failing) for a read or a write.

    `written` says what is known of a write: False when nothing was stored, None when the
    answer was lost and reading back failed too (it may or may not have been stored), True when
    the change was stored and a step after it failed (the bot finishes it by itself)."""

    def __init__(self, message: str, written: bool | None = False) -> None:
        super().__init__(message)
        self.written = written


class IncidentNotFound(Exception):
    pass


class IncidentExists(Exception):
    pass


class NotAChecklistItem(Exception):
    """The clicked item is not on the message it was clicked in (stale or foreign payload)."""


class IncidentClosed(Exception):
    """The incident is resolved; it takes no more changes."""


class StaleReference(Exception):
    """A button, modal or checkbox names an incident that is gone, or another incident that
    now has the same number: nothing may be written through it."""


class NothingToChange(Exception):
    """The change asks for the state the incident is already in (e.g. raising SEV1 to SEV1)."""


class UnknownHypothesis(Exception):
    """The incident has no hypothesis with that number."""


class NotAllowed(Exception):
    """The playbook keeps this change to a role the user does not hold; the message says which."""


class ChannelTaken(Exception):
    """A borrowed channel already hosts another open incident."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(incident_id)
        self.incident_id = incident_id


class StoreLost(Exception):
    """The incident store lost its data (flushed, or a failover to an empty node): nothing may be
    declared until it is restored or deliberately started afresh."""

    def __init__(self, last_number: int | None) -> None:
        self.last_number = last_number
        seen = f"the bot last saw INC-{last_number}" if last_number else "its identity is gone"
        nxt = (last_number or 0) + 1
        super().__init__(
            f"the incident store lost its data ({seen}): restore Redis from its backup, or start "
            f"afresh with `incident-bot store reset --next-number {nxt}`"
        )
