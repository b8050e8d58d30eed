"""Configuration, from ``HUB_*`` environment variables. Only ``hub.cli`` reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sinks.rabbitmq import DEFAULT_EXCHANGE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in containers)."""
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("var")
    """Where the journal lives."""
    rabbitmq_url: str | None = None
    """``amqp://user:password@host:5672/vhost``; unset: events stay in the local journal."""
    exchange: str = DEFAULT_EXCHANGE
    publish_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for the broker's confirms before telling the provider to retry."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
