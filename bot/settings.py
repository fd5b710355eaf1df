"""Configuration from the environment, read once by the factory that builds the app."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.models import parse_duration

SLACK_API_URL_DEFAULT = "https://slack.com/api/"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    slack_bot_token: str = Field(default="", alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str = Field(default="", alias="SLACK_SIGNING_SECRET")
    slack_app_token: str = Field(default="", alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default=SLACK_API_URL_DEFAULT, alias="SLACK_API_URL")
    redis_url: str = Field(default="", alias="REDIS_URL")
    redis_sentinel_password: str = Field(default="", alias="REDIS_SENTINEL_PASSWORD")
    # Replicas a write must reach before the user is told it is saved; unset: 1 under Sentinel
    # or Cluster, 0 for a single server. The wait is bounded by REDIS_WAIT_MS.
    redis_wait_replicas: int | None = Field(default=None, ge=0, le=5, alias="REDIS_WAIT_REPLICAS")
    redis_wait_ms: int = Field(default=200, ge=0, le=500, alias="REDIS_WAIT_MS")
    incident_playbook: Path | None = Field(default=None, alias="INCIDENT_PLAYBOOK")
    stakeholder_channel: str = Field(default="", alias="INCIDENT_STAKEHOLDER_CHANNEL")
    create_channels: bool = Field(default=True, alias="INCIDENT_CREATE_CHANNELS")
    channel_prefix: str = Field(default="inc", alias="INCIDENT_CHANNEL_PREFIX")
    # Evidence (each off while its variable is unset): the bearer token POST /alerts/alertmanager
    # and POST /events/change require; where alerts of no incident are posted (default: the
    # stakeholder channel); the Prometheus (or compatible query API) charts are drawn from.
    alert_token: str = Field(default="", alias="INCIDENT_ALERT_TOKEN")
    triage_channel: str = Field(default="", alias="INCIDENT_TRIAGE_CHANNEL")
    prometheus_url: str = Field(default="", alias="PROMETHEUS_URL")
    port: int = Field(default=3000, ge=0, le=65535, alias="PORT")
    log_level: LogLevel = Field(default="INFO", alias="LOG_LEVEL")
    # text: one readable line per record; json: one JSON object per line, for a log pipeline.
    log_format: LogFormat = Field(default="text", alias="LOG_FORMAT")
    # How long a resolved incident stays in Redis before it expires, indexes included; 0 keeps
    # resolved incidents forever. `incident-bot export` archives them before that.
    incident_retention: timedelta = Field(default=timedelta(days=90), alias="INCIDENT_RETENTION")
    # How long start-up keeps trying Redis and Slack before giving up (exit 1).
    startup_timeout: timedelta = Field(default=timedelta(seconds=30), alias="STARTUP_TIMEOUT")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _one_of(cls, value: Any, info: ValidationInfo) -> Any:
        """Either case; a value that is none of the choices is refused as written, naming them."""
        choices = {"log_level": LOG_LEVELS, "log_format": LOG_FORMATS}[str(info.field_name)]
        if not isinstance(value, str):
            return value
        for choice in choices:
            if value.strip().lower() == choice.lower():
                return choice
        raise ValueError(f"use one of {', '.join(choices)}")

    @field_validator("slack_api_url", "prometheus_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not url.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("startup_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("incident_retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        if isinstance(value, int | str) and str(value).strip() == "0":
            return timedelta(0)  # keep forever
        return parse_duration(value)

    @property
    def api_base_url(self) -> str:
        """slack_sdk joins base_url and method name without a separator."""
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
