"""A loopback stand-in for the Slack Web API, and a Slack client side to drive the bot.

`SlackStandIn` answers the bot's Web API calls like Slack (including the refusals) and serves
Socket Mode; its `faults` make chosen calls fail the way Slack and the network fail.
`SlackUser` sends the bot slash commands, clicks and modal submissions, signed over HTTP or as
envelopes on its Socket Mode connection; `render_channel` shows a channel as a person reads it.
"""

from .faults import Fault, Faults
from .limits import Rejection, Violation, check_blocks, check_message, check_view
from .ratelimit import Bucket, RateLimitConfig
from .server import DEFAULT_BOT_SCOPES, SlackStandIn
from .socket_mode import ACK_WINDOW_SECONDS, SocketConnection, SocketEnvelope
from .transcript import render_channel
from .user import NO_ACK_STATUS, NOT_CONNECTED_STATUS, BotReply, SlackUser
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
    UploadedFile,
)

__all__ = [
    "ACK_WINDOW_SECONDS",
    "DEFAULT_BOT_SCOPES",
    "NOT_CONNECTED_STATUS",
    "NO_ACK_STATUS",
    "ApiCall",
    "BotIdentity",
    "BotReply",
    "Bucket",
    "Channel",
    "EphemeralMessage",
    "Fault",
    "Faults",
    "Message",
    "OpenedView",
    "RateLimitConfig",
    "Rejection",
    "ResponseDelivery",
    "SeedChannel",
    "SeedUser",
    "SlackStandIn",
    "SlackUser",
    "SocketConnection",
    "SocketEnvelope",
    "UploadedFile",
    "Violation",
    "check_blocks",
    "check_message",
    "check_view",
    "render_channel",
]
