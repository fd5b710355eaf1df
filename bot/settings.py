"""Configuration from the environment, read once by the factory that builds the app."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_API_URL_DEFAULT = "https://slack.com/api/"


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
    port: int = Field(default=3000, alias="PORT")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    @property
    def api_base_url(self) -> str:
        """slack_sdk joins base_url and method name without a separator."""
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
