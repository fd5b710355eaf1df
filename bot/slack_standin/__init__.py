"""A loopback stand-in for the Slack Web API, and a Slack client side to drive the bot.

`SlackStandIn` answers the bot's Web API calls like Slack (including the refusals);
`SlackUser` sends the bot signed slash commands, clicks and modal submissions;
`render_channel` shows a channel as a person reads it.
"""

from .limits import Rejection, Violation, check_blocks, check_message, check_view
from .ratelimit import Bucket, RateLimitConfig
from .server import DEFAULT_BOT_SCOPES, SlackStandIn
from .transcript import render_channel
from .user import BotReply, SlackUser
from .workspace import (
    ApiCall,
    BotIdentity,
    Channel,
    EphemeralMessage,
    Message,
    OpenedView,
    ResponseDelivery,
    SeedChannel,
    SeedUser,
)

__all__ = [
    "DEFAULT_BOT_SCOPES",
    "ApiCall",
    "BotIdentity",
    "BotReply",
    "Bucket",
    "Channel",
    "EphemeralMessage",
    "Message",
    "OpenedView",
    "RateLimitConfig",
    "Rejection",
    "ResponseDelivery",
    "SeedChannel",
    "SeedUser",
    "SlackStandIn",
    "SlackUser",
    "Violation",
    "check_blocks",
    "check_message",
    "check_view",
    "render_channel",
]
