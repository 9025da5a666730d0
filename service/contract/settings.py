"""The one settings model of every tokenrelay process (prefix ``TOKENRELAY_``, ``.env``)."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_LANGUAGES = (
    "python",
    "javascript",
    "typescript",
    "go",
    "rust",
    "java",
    "c",
    "cpp",
    "csharp",
    "ruby",
    "php",
    "kotlin",
    "swift",
    "sql",
    "shell",
    "html",
    "css",
    "markdown",
    "plaintext",
)


def _split_csv(value: object) -> object:
    """Lists come from the environment as comma-separated text."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting has a safe single-machine default; unknown ``TOKENRELAY_*`` names fail."""

    model_config = SettingsConfigDict(
        env_prefix="TOKENRELAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_default=True,
    )

    # Where things are.
    redis_url: str | None = Field(
        default=None, description="Redis to use; unset in `tokenrelay up` = a private one"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    upstream_url: str = "http://127.0.0.1:8100/v1"
    upstream_api_key: SecretStr | None = None
    model: str = "tokenrelay-sim"
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allowed models; empty = any"
    )
    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_LANGUAGES)
    )

    # Limits on input.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_prompt_chars: int = Field(default=32_000, ge=1)
    max_tokens_limit: int = Field(default=32_768, ge=1)

    # Worker.
    worker_concurrency: int = Field(default=256, ge=1, le=10_000)
    worker_id: str | None = None
    lease_seconds: float = Field(default=15.0, gt=0.5)
    max_attempts: int = Field(default=4, ge=1, le=20)
    max_deliveries: int = Field(default=5, ge=1, le=50)
    retry_base_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(default=20.0, gt=0)
    upstream_connect_timeout: float = Field(default=10.0, gt=0)
    upstream_first_token_timeout: float = Field(default=60.0, gt=0)
    upstream_idle_timeout: float = Field(default=30.0, gt=0)
    upstream_total_timeout: float = Field(default=600.0, gt=0)
    token_flush_ms: float = Field(default=15.0, ge=0, le=1000)
    cancel_poll_seconds: float = Field(default=0.25, gt=0, le=5)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)

    # Gateway.
    sse_retry_ms: int = Field(default=1000, ge=0)
    ping_seconds: float = Field(default=15.0, gt=0)
    send_timeout_seconds: float = Field(default=30.0, gt=0)
    viewer_buffer_frames: int = Field(default=1024, ge=8)
    replay_cache_entries: int = Field(default=20_000, ge=0, description="per live job, in memory")
    retention_seconds: int = Field(default=86_400, ge=1)
    unfinished_job_seconds: int = Field(default=7 * 86_400, ge=60)
    idempotency_seconds: int = Field(default=86_400, ge=1)
    submit_wait_replicas: int = Field(
        default=0, ge=0, le=16, description="replicas that must hold a job before 202; 0 = off"
    )
    # Below the Redis socket timeout (15 s), or the client would give up on WAIT first.
    submit_wait_timeout_ms: int = Field(default=1000, ge=1, le=10_000)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="submit/cancel need one of these; empty = auth off"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed to call the API from a browser"
    )
    submit_rate_per_minute: int = Field(
        default=60, ge=0, description="per key and per address; 0 = off"
    )
    stream_rate_per_minute: int = Field(default=600, ge=0, description="per address; 0 = off")
    max_streams_per_client: int = Field(default=200, ge=0, description="open at once; 0 = off")
    trust_forwarded_for: bool = False
    viewer_token_secret: SecretStr | None = None
    viewer_token_seconds: int = Field(default=7 * 86_400, ge=60)

    # Operations.
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="where a worker serves /metrics (0.0.0.0 in containers)"
    )
    worker_metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="a worker's /metrics port; 0 = off"
    )
    viewer_report_seconds: float = Field(
        default=5.0, gt=0, le=300, description="how often a gateway reports its viewers to Redis"
    )
    log_level: str = "INFO"

    @field_validator("models", "languages", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _lists_from_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://")
        if value is not None and not value.startswith(schemes):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+cluster://")
        return value

    @field_validator("upstream_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                "must be an http:// or https:// base URL, e.g. https://api.openai.com/v1"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_unknown_environment(self) -> Settings:
        # pydantic-settings ignores unknown prefixed environment variables; a misspelt name
        # (TOKENRELAY_API_KEY for TOKENRELAY_API_KEYS) must not silently leave auth off.
        known = {f"TOKENRELAY_{name.upper()}" for name in type(self).model_fields}
        unknown = sorted(
            name for name in os.environ if name.startswith("TOKENRELAY_") and name not in known
        )
        if unknown:
            raise ValueError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
        return self

    @property
    def auth_enabled(self) -> bool:
        """Auth is on as soon as one API key is configured."""
        return bool(self.api_keys)

    @property
    def required_redis_url(self) -> str:
        """The Redis URL, for processes that cannot start their own Redis."""
        if self.redis_url is None:
            raise ValueError(
                "TOKENRELAY_REDIS_URL is not set (only `tokenrelay up` starts a private Redis)"
            )
        return self.redis_url
