"""Who runs an incident: the commander and the roles the playbook defines, and what the
playbook keeps to the commander."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.blocks.format import user as who
from bot.effects import RefreshHeader, Say, Target, Work
from bot.errors import IncidentNotFound, NotAllowed, StaleReference
from bot.models import EventKind, Incident, TimelineEvent, utcnow
from bot.playbook import Permission, Playbook
from bot.store import Change, IncidentStore
from bot.text import escape_mrkdwn


class UnknownRole(Exception):
    """The playbook defines no such role; the message lists the ones it does."""


class Roles:
    def __init__(
        self, store: IncidentStore, playbook: Playbook, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.playbook = playbook
        self.clock = clock

    async def assign(self, incident_id: str, role: str, user: str, by: str, request_id: str) -> Incident:
        """Give `role` to `user`. Handing the commander role over also tells the stakeholders.
        NothingToChange if they hold it already."""
        label = self.playbook.role_label(role)
        if label is None:
            known = ", ".join(f"`{key}`" for key in self.playbook.roles)
            shown = escape_mrkdwn(role)
            raise UnknownRole(f"There is no role `{shown}` in the playbook; its roles are {known}.")
        now = self.clock()

        def change(incident: Incident) -> Change | None:
            if incident.has_applied(request_id):
                return None
            if role == "commander":
                check_hand_over(self.playbook, incident, by)
            before = incident.role_holders().get(role)
            after = incident.with_role(role, user, now, request_id)
            was = f" (was {who(before)})" if before else ""
            label_text = escape_mrkdwn(label)
            event = TimelineEvent(at=now, kind=EventKind.ROLE, by=by, text=f"made <@{user}> {label}{was}")
            works: list[Work] = [
                RefreshHeader(),
                Say(
                    target=Target.INCIDENT,
                    text=f":bust_in_silhouette: {who(by)} made {who(user)} {label_text}{was}.",
                ),
            ]
            if role == "commander":
                works.append(
                    Say(
                        target=Target.STAKEHOLDERS,
                        text=f":bust_in_silhouette: *{incident.id}*: {who(user)} is now the incident "
                        f"commander{was}.",
                    )
                )
            return Change(after, [event], works)

        try:
            incident, _ = await self.store.update_incident(incident_id, change)
        except IncidentNotFound as exc:
            raise StaleReference(incident_id) from exc
        return incident


def check_hand_over(playbook: Playbook, incident: Incident, user: str) -> None:
    """Where the playbook keeps anything to the commander, only the commander hands the role
    over: otherwise anyone could take it, then resolve."""
    kept = [
        a for a in ("resolve", "lower_severity") if getattr(playbook.permissions, a) is Permission.COMMANDER
    ]
    if kept and user != incident.commander:
        raise NotAllowed(
            f"Only the incident commander ({who(incident.commander)}) may hand the role over under "
            "this workspace's playbook, so nothing was changed."
        )


def check_permission(playbook: Playbook, incident: Incident, action: str, user: str) -> None:
    """NotAllowed when the playbook keeps `action` (resolve, lower_severity) to the commander
    and `user` is not the commander."""
    keeper: Permission = getattr(playbook.permissions, action)
    if keeper is Permission.COMMANDER and user != incident.commander:
        what = {"resolve": "resolve it", "lower_severity": "lower its severity"}[action]
        raise NotAllowed(
            f"Only the incident commander ({who(incident.commander)}) may {what} under this "
            "workspace's playbook, so nothing was changed."
        )
