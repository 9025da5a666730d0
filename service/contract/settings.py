"""The one settings model of every tokenrelay process (prefix ``TOKENRELAY_``, ``.env``)."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.contract.errors import ConfigurationError

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
        default=None,
        description=(
            "Redis to use: `redis://`, `rediss://`, `unix://`, or `redis+cluster://host:port,…` "
            "(any reachable nodes as seeds) for a Redis Cluster; unset in `tokenrelay up` = a "
            "private one, every other process needs it set"
        ),
    )
    host: str = Field(
        default="127.0.0.1",
        description="address the gateway listens on (and `tokenrelay submit/watch` call)",
    )
    port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        description="port the gateway listens on (and `tokenrelay submit/watch` call)",
    )
    gateway_processes: int = Field(
        default=1,
        ge=0,
        le=512,
        description=(
            "gateway processes serving the one port (SO_REUSEPORT, Linux), watched by one "
            "parent that restarts a dead one and passes SIGTERM on; 0 = one per CPU core "
            "this process may use ([scaling.md](scaling.md#every-core-of-a-host))"
        ),
    )
    upstream_url: str = Field(
        default="http://127.0.0.1:8100/v1",
        description=(
            "the provider's OpenAI-compatible base URL, as the `openai` SDK takes it; workers "
            "stream from `{base}/chat/completions`"
        ),
    )
    upstream_api_key: SecretStr | None = Field(
        default=None,
        description=(
            "the provider's key, sent only to the upstream and redacted from every log line; "
            "unset in `tokenrelay up` = the simulated upstream"
        ),
    )
    upstream_simulated: bool = Field(
        default=False,
        description=(
            "the upstream is tokenrelay's simulator (`tokenrelay simulate-upstream`), not a "
            'model: `/v1/meta` says so and the page shows a "simulated upstream" badge; '
            "`tokenrelay up` sets it when it starts the simulator"
        ),
    )
    model: str = Field(default="tokenrelay-sim", description="the model of a job that names none")
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="allowed models, comma-separated; others are refused with 400; empty = any",
    )
    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_LANGUAGES),
        description="allowed `language` values of a job (Monaco language ids), comma-separated",
    )

    # Limits on input.
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="largest request body the gateway reads; larger is 413",
    )
    max_prompt_chars: int = Field(
        default=32_000,
        ge=1,
        description=(
            "most characters of prompt text (the prompt, or all messages together); more is "
            "413 `prompt_too_large`"
        ),
    )
    max_tokens_limit: int = Field(
        default=32_768, ge=1, description="largest `max_tokens` a job may ask for; more is 400"
    )

    # Worker.
    worker_concurrency: int = Field(
        default=256, ge=1, le=10_000, description="jobs one worker process runs at once"
    )
    worker_id: str | None = Field(
        default=None,
        description=(
            "the worker's consumer name in the queue group, its logs and metrics; unset = "
            "`<hostname>-<pid>`"
        ),
    )
    lease_seconds: float = Field(
        default=15.0,
        gt=0.5,
        description=(
            "a worker renews its running jobs' leases every third of this; a job whose worker "
            "is silent this long is taken over by another worker"
        ),
    )
    max_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description=(
            "attempts per job: a retryable upstream failure (429, 5xx, a cut or stalled "
            "stream, a timeout) is retried while the job has had fewer"
        ),
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=50,
        description=(
            "times a job may be taken by a worker before it fails as poison (`worker_lost`) "
            "and is dead-lettered"
        ),
    )
    retry_base_seconds: float = Field(
        default=0.5, gt=0, description="base of the jittered exponential backoff between attempts"
    )
    retry_max_seconds: float = Field(
        default=20.0,
        gt=0,
        description="longest backoff between attempts, an honoured `Retry-After` included",
    )
    upstream_connect_timeout: float = Field(
        default=10.0, gt=0, description="seconds to connect to the upstream"
    )
    upstream_first_token_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds from sending an upstream request to its first text",
    )
    upstream_idle_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds without data in the middle of an upstream stream (a stall)",
    )
    upstream_total_timeout: float = Field(
        default=600.0,
        gt=0,
        description=(
            "seconds one upstream call may take in all; times `MAX_ATTEMPTS`, a job's time budget"
        ),
    )
    token_flush_ms: float = Field(
        default=15.0,
        ge=0,
        le=1000,
        description=(
            "a job writes its tokens to Redis at most once per this window, merging what "
            "arrived meanwhile; a token after a quiet window is written at once; 0 = no waiting"
        ),
    )
    cancel_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        le=5,
        description="how soon a running worker notices a cancel and closes the upstream call",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="on SIGTERM, how long running jobs (worker) and requests (gateway) get",
    )

    # Gateway.
    sse_retry_ms: int = Field(
        default=1000,
        ge=0,
        description="the `retry:` reconnect delay that opens every event stream",
    )
    ping_seconds: float = Field(
        default=15.0,
        gt=0,
        description="an event stream without data this long gets a `: ping` comment",
    )
    send_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "a viewer that takes no data this long is disconnected (it resumes on reconnect)"
        ),
    )
    viewer_buffer_frames: int = Field(
        default=1024,
        ge=8,
        description=(
            "a viewer this many reads from Redis behind the live feed is disconnected (it "
            "resumes on reconnect)"
        ),
    )
    replay_cache_entries: int = Field(
        default=20_000,
        ge=0,
        description=(
            "stream entries a gateway keeps in memory per job to serve resumes and late "
            "viewers; a longer job is replayed from Redis; 0 = always from Redis"
        ),
    )
    durable_streams_long_poll_seconds: float = Field(
        default=20.0,
        gt=0,
        le=60,
        description=(
            "Durable Streams (`/v1/stream/`): how long a long-poll read waits for data before "
            "answering 204, and how often a quiet SSE read gets a keepalive control event"
        ),
    )
    retention_seconds: int = Field(
        default=86_400,
        ge=1,
        description=(
            "a finished job's record and events are kept this long, then answer 410 `expired`"
        ),
    )
    unfinished_job_seconds: int = Field(
        default=7 * 86_400,
        ge=60,
        description="upper bound on the lifetime of an unfinished job's keys",
    )
    tombstone_seconds: int = Field(
        default=30 * 86_400,
        ge=0,
        description=(
            "how long an expired job's id still answers 410 `expired` instead of 404 "
            "(a small key per job, kept this long after the job's own keys)"
        ),
    )
    idempotency_seconds: int = Field(
        default=86_400,
        ge=1,
        description="how long an `Idempotency-Key` keeps answering with the job it created",
    )
    submit_wait_replicas: int = Field(
        default=0,
        ge=0,
        le=16,
        description=(
            "a submit answers 202 only once this many replicas of each primary it wrote to "
            "hold the job (`WAIT`), else 503 `replication_timeout`; 0 = off"
        ),
    )
    # Below the Redis socket timeout (15 s), or the client would give up on WAIT first.
    submit_wait_timeout_ms: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="how long a submit waits for `SUBMIT_WAIT_REPLICAS` to confirm",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "keys that may submit and cancel (`Authorization: Bearer …`), comma-separated; "
            "empty = auth off"
        ),
    )
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "keys that may do what `API_KEYS` may and also cancel any job (an operator's), "
            "comma-separated; setting one turns auth on"
        ),
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "browser origins allowed to call the API (CORS headers and preflights), "
            "comma-separated; other origins get 403"
        ),
    )
    submit_rate_per_minute: int = Field(
        default=60,
        ge=0,
        description="submits per minute per API key and per client address; 0 = off",
    )
    stream_rate_per_minute: int = Field(
        default=600,
        ge=0,
        description="event-stream connections per minute per client address; 0 = off",
    )
    max_streams_per_client: int = Field(
        default=200,
        ge=0,
        description="event streams open at once per client address on one gateway; 0 = off",
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description=(
            "networks (CIDR, comma-separated) of the proxies whose `X-Forwarded-For` is "
            "believed: the client is the rightmost address not in them; empty = the header is "
            "ignored and the peer is the client"
        ),
    )
    viewer_token_secret: SecretStr | None = Field(
        default=None,
        description=(
            "HMAC secret of viewer tokens; unset = one generated once and kept in Redis, "
            "shared by every gateway"
        ),
    )
    viewer_token_seconds: int = Field(
        default=7 * 86_400, ge=60, description="how long a viewer token is valid"
    )

    # Operations.
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="where a worker serves /metrics (0.0.0.0 in containers)"
    )
    worker_metrics_port: int = Field(
        default=9101,
        ge=0,
        le=65535,
        description="a worker's /metrics port (one per worker process on a host); 0 = off",
    )
    viewer_report_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description=(
            "how often a gateway reports its viewers per job to Redis (for `tokenrelay jobs`)"
        ),
    )
    log_level: str = Field(
        default="INFO",
        description=(
            "DEBUG, INFO, WARNING, ERROR or CRITICAL; JSON lines when stderr is not a terminal"
        ),
    )

    @field_validator(
        "models",
        "languages",
        "api_keys",
        "admin_api_keys",
        "cors_origins",
        "trusted_proxies",
        mode="before",
    )
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
        """Auth is on as soon as one API key (or admin key) is configured."""
        return bool(self.api_keys or self.admin_api_keys)

    @property
    def tombstone_ttl_seconds(self) -> int:
        """How long a job's tombstone lives from its creation (or requeue): past the latest its
        keys can expire (it ends within UNFINISHED_JOB_SECONDS, then is kept RETENTION_SECONDS)
        by TOMBSTONE_SECONDS."""
        return self.unfinished_job_seconds + self.retention_seconds + self.tombstone_seconds

    @property
    def required_redis_url(self) -> str:
        """The Redis URL, for processes that cannot start their own Redis."""
        if self.redis_url is None:
            raise ConfigurationError(
                "TOKENRELAY_REDIS_URL is not set, and no `tokenrelay up` runs in this folder "
                "(it records its private Redis in .tokenrelay/redis.url)"
            )
        return self.redis_url
