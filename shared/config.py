"""Service configuration: one `Settings` class read from the environment, `.env` and `.env.cloud`.

Every variable is documented in `.env.cloud.example`. Secrets are `SecretStr`, so they never
show in reprs or logs. A bad value fails at start-up with `ConfigError`, naming the variable
and what it expects; the rejected value is echoed only for non-secret variables.
"""

from __future__ import annotations

import fcntl
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.mcp import McpServers
from shared.models import Intent
from shared.pii import NATIONAL_IDS, PiiRedactor
from shared.response_cache import CacheConfig
from shared.tool_calls import BUILTIN_TOOLS
from shared.usage import DEFAULT_MODEL_PRICES, Limits, ModelPrice

CONFIG_FILES = (".env", ".env.cloud")
PLACEHOLDER_SECRETS = frozenset({"changeme", "changethis", "secret", "your-secret-here", "xxx"})


class ConfigError(Exception):
    """Configuration is invalid; the message says which variable and what to fix."""


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) URL such as https://api.openai.com/v1")
    return value.rstrip("/")


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port, for example localhost:7233")
    return value


def _postgres_url(value: SecretStr) -> SecretStr:
    scheme = urlsplit(value.get_secret_value()).scheme
    if scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ValueError("expected a postgresql:// URL, for example postgresql://user:pw@host/db")
    return value


def _redis_url(value: SecretStr) -> SecretStr:
    scheme = urlsplit(value.get_secret_value()).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            "expected a redis:// or rediss:// URL, for example redis://localhost:6379/0"
        )
    return value


def _names(value: object) -> object:
    """A comma-separated list from the environment (TOOLS=search_web,create_ticket)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _origins(value: object) -> object:
    """`CORS_ALLOW_ORIGINS=https://a.example, https://b.example`: a comma list, each an
    origin (scheme://host[:port], no path), or `*` for any origin."""
    if not isinstance(value, str):
        return value
    origins = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (
            parts.scheme not in ("http", "https") or not parts.netloc or parts.path
        ):
            raise ValueError(
                f"{origin!r} is not an origin: expected e.g. https://chat.example.com, or *"
            )
    return origins


HttpUrl = Annotated[str, AfterValidator(_http_url)]
HostPort = Annotated[str, AfterValidator(_host_port)]
PostgresUrl = Annotated[SecretStr, AfterValidator(_postgres_url)]
RedisUrl = Annotated[SecretStr, AfterValidator(_redis_url)]


class Settings(BaseSettings):
    """All configuration. Field `foo_bar` is read from variable `FOO_BAR`."""

    model_config = SettingsConfigDict(
        # Later files win, the environment over all. load_settings() adds, first, the
        # dev.env of a `chatbot dev` running here (its Postgres, Redis, Temporal, model),
        # so `chatbot ops`, `companies import` and `route` find that stack by themselves.
        env_file=CONFIG_FILES,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
        env_ignore_empty=True,  # `VAR=` in a .env file means unset, not ""
    )

    environment: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    chatbot_home: Path = Path(".chatbot")

    # Temporal: a local or self-hosted cluster ...
    temporal_address: HostPort = "localhost:7233"
    temporal_namespace: str = Field("default", min_length=1)
    temporal_task_queue: str = Field("chat-sessions", min_length=1)
    # Workers run as a version of this Worker Deployment: a session's run stays on the
    # build that started it (Pinned); `chatbot worker --promote` makes a build current.
    worker_deployment_name: str = Field("chatbot", min_length=1, max_length=200)
    # Unset: the package version and a hash of the worker's code (shared.build).
    worker_build_id: str | None = Field(None, min_length=1, max_length=200)
    temporal_ui_url: HttpUrl = "http://localhost:8233"
    # ... or Temporal Cloud, used when an API key is set.
    temporal_cloud_namespace: str | None = None
    temporal_cloud_address: HostPort | None = None
    temporal_cloud_api_key: SecretStr | None = None
    # TLS to a self-hosted cluster (always on for Temporal Cloud), and a private CA to trust.
    temporal_tls: bool = False
    temporal_tls_ca_path: Path | None = None

    # Postgres; unset means the embedded server that `chatbot dev` starts.
    database_url: PostgresUrl | None = None
    db_pool_size: int = Field(20, ge=1, le=1000)
    db_max_overflow: int = Field(30, ge=0, le=1000)
    db_pool_timeout_seconds: float = Field(10.0, gt=0)
    # PgBouncer in transaction mode (Neon's pooled endpoint) cannot keep prepared statements;
    # None = detect from a "-pooler" host name.
    db_pgbouncer: bool | None = None

    redis_url: RedisUrl | None = None
    # Every Redis command gives up after this long (redis-py 8 would use 5 s and hide it).
    redis_socket_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # Connections per process for commands, and apart from them for the blocking reads of
    # token streams, so open streams can never take the rate limiter's connections. A
    # request that finds its pool full waits REDIS_SOCKET_TIMEOUT_SECONDS, then gets 503.
    redis_max_connections: int = Field(100, ge=1, le=10_000)
    redis_stream_connections: int = Field(500, ge=1, le=10_000)

    openai_api_key: SecretStr | None = None
    openai_base_url: HttpUrl | None = None
    openai_chat_model: str = Field("gpt-4o-mini", min_length=1)
    openai_search_model: str = Field("gpt-4o-search-preview", min_length=1)
    openai_embedding_model: str = Field("text-embedding-3-small", min_length=1)
    # What vector search and memory embed with: `auto` = the local MiniLM (the `embed`
    # extra, offline) when installed, else OPENAI_EMBEDDING_MODEL with a key, else none
    # (full-text search only, and no recall of older messages by meaning).
    embedder: Literal["auto", "local", "openai", "none"] = "auto"
    openai_timeout_seconds: float = Field(60.0, gt=0)
    # Who writes the reply to a company search that found companies: `model` (told the
    # results), or `template`: a fixed lead-in in the user's language above the results,
    # no model asked. `auto`: template without OPENAI_API_KEY (the small local model of
    # `chatbot dev` invents and repeats companies when asked to list them), else model.
    tool_replies: Literal["auto", "model", "template"] = "auto"
    # Who chooses a turn's tools: `on` = the model (OpenAI function calling: it may call
    # several tools in up to TOOL_MAX_STEPS rounds, and tools with side effects wait for
    # the user's approval), `off` = the offline intent router. `auto`: on with
    # OPENAI_API_KEY (a provider that calls tools), off for the local model.
    tool_calling: Literal["auto", "on", "off"] = "auto"
    tool_max_steps: int = Field(4, ge=1, le=16)
    # A call waiting for approval longer than this is denied, and the model told so.
    # A session handed to a person that no agent claims within this long: the user is
    # told so and offered a ticket (it stays in the queue).
    handoff_sla_seconds: float = Field(600, ge=5, le=7 * 86_400)
    # This many failed turns in a row hand the session to a person too (0: never).
    handoff_after_failures: int = Field(0, ge=0, le=100)
    # Intents the team keeps for people (comma-separated: chat, company_search, web_search,
    # both): on the router's path such a message hands the session over at once.
    handoff_intents: Annotated[list[Intent], NoDecode, BeforeValidator(_names)] = []
    approval_timeout_seconds: float = Field(900.0, gt=0, le=7 * 86400)
    # The built-in tools the model is offered, and those that run without approval.
    tools: Annotated[list[str], NoDecode, BeforeValidator(_names)] = list(BUILTIN_TOOLS)
    tools_auto_approve: Annotated[list[str], NoDecode, BeforeValidator(_names)] = []
    # MCP servers whose tools are offered too: a JSON list of {"name", "url" | "command",
    # "headers"?, "env"?, "approval"?, "timeout_seconds"?}; listed again this often.
    mcp_servers: McpServers = []
    mcp_refresh_seconds: float = Field(300.0, ge=1)
    # With a real model configured, a low-confidence intent is decided by one
    # structured-output call; off keeps routing offline (rules + classifier).
    intent_llm_fallback: bool = True

    # Personal data (emails, phone numbers, Luhn-valid card numbers, IBANs, the national
    # ids named) replaced by placeholders: `logs` in every log line; `logs+prompts` also
    # in what is sent to the model, the originals put back in the reply its owner sees.
    pii_redaction: Literal["off", "logs", "logs+prompts"] = "off"
    pii_national_ids: Annotated[list[str], NoDecode, BeforeValidator(_names)] = list(NATIONAL_IDS)

    # Circuit breakers on the providers (LLM, web search, Databricks, embeddings), shared
    # by all workers through Redis: this many failures (unreachable, timed out, 5xx)
    # within the window open one; while open, calls fail at once with
    # provider_unavailable; then one probe call decides. 0 turns breakers off.
    breaker_failures: int = Field(5, ge=0, le=1000)
    breaker_window_seconds: float = Field(30.0, gt=0, le=3600)
    breaker_open_seconds: float = Field(30.0, gt=0, le=3600)

    # The response cache: a question asked again in the same context (no tools, nothing
    # personal in the prompt; shared/response_cache.py) is answered from Redis without
    # the model: `exact` by the normalized question, `semantic` also by embedding
    # similarity at or above CACHE_SIMILARITY. Scope `user`: never shared between users;
    # `shared`: every user of this deployment.
    cache_mode: Literal["off", "exact", "semantic"] = "off"
    cache_scope: Literal["user", "shared"] = "user"
    cache_ttl_seconds: int = Field(86_400, ge=1, le=30 * 86_400)
    cache_similarity: float = Field(0.92, gt=0, le=1)
    cache_semantic_entries: int = Field(256, ge=1, le=10_000)

    # The query_data tool: questions over a SQL database, read as a SELECT-only role.
    # Unset: `chatbot dev` points it at the sample maintenance data it loads into its
    # Postgres; elsewhere the tool is not offered. DATA_SCHEMAS are the only schemas a
    # query may read; a query gets MAX_SQL_RETRIES more tries after an error, runs at
    # most SQL_TIMEOUT_SECONDS and returns at most SQL_MAX_ROWS rows (HEAD_ROWS of them
    # shown to the model, all in the CSV artifact, each artifact at most ARTIFACT_MAX_BYTES).
    data_database_url: PostgresUrl | None = None
    data_schemas: Annotated[list[str], NoDecode, BeforeValidator(_names)] = ["sample_maintenance"]
    max_sql_retries: int = Field(2, ge=0, le=5)
    sql_timeout_seconds: float = Field(5.0, gt=0, le=300)
    sql_max_rows: int = Field(10_000, ge=1, le=1_000_000)
    head_rows: int = Field(10, ge=1, le=200)
    artifact_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Where artifacts' bytes go: Postgres (beside their row), or an S3-compatible bucket
    # (AWS S3, MinIO, R2...; the `s3` extra), the row keeping who owns them. Credentials
    # come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile,
    # an instance role).
    artifact_store: Literal["postgres", "s3"] = "postgres"
    artifact_s3_bucket: str | None = Field(None, min_length=3, max_length=63)
    artifact_s3_prefix: str = Field("artifacts/", max_length=200)
    artifact_s3_endpoint_url: HttpUrl | None = None  # unset: AWS's own endpoint
    artifact_s3_region: str | None = None

    databricks_host: HttpUrl | None = None
    databricks_token: SecretStr | None = None
    databricks_endpoint_name: str | None = None
    databricks_index_name: str | None = None

    inactivity_timeout_minutes: float = Field(5, gt=0)
    # Conversation memory: turns sent verbatim, the prompt's token budget, and retrieval of
    # older messages of the session by similarity (pgvector cosine).
    context_recent_turns: int = Field(10, ge=1, le=100)
    context_max_tokens: int = Field(6000, ge=512, le=1_000_000)
    # Unset: the embedder's own (local MiniLM 0.3, OpenAI 0.7), as each has its own scale.
    retrieval_threshold: float | None = Field(None, ge=0, le=1)
    retrieval_top_k: int = Field(3, ge=0, le=20)
    summary_max_chars: int = Field(4000, ge=200, le=100_000)
    # A session's workflow continues as new after this many turns (or sooner when the
    # server suggests it), so each run's event history stays small.
    turns_per_run: int = Field(100, ge=1, le=1000)
    max_tokens: int = Field(512, ge=1, le=128_000)

    # Per-user budgets (UTC days and months); unset = no limit. A row in user_budgets
    # (`chatbot ops budget USER ...`) overrides them for one user. Each model call reserves its
    # worst case (prompt + MAX_TOKENS) first; a reservation a crash left behind stops
    # counting after BUDGET_RESERVATION_MINUTES.
    budget_tokens_per_day: int | None = Field(None, ge=0)
    budget_tokens_per_month: int | None = Field(None, ge=0)
    budget_cost_per_day: float | None = Field(None, ge=0)  # USD
    budget_cost_per_month: float | None = Field(None, ge=0)
    budget_reservation_minutes: float = Field(30.0, gt=0, le=24 * 60)
    # Prices for cost estimates, USD per million tokens, as JSON:
    # {"my-model": {"prompt": 0.5, "completion": 1.5, "cached": 0.25}}; merged over the
    # built-in table of OpenAI's models (shared/usage.py). Tool calls: USD per call.
    model_prices: dict[str, ModelPrice] = {}
    tool_prices: dict[str, Annotated[float, Field(ge=0)]] = {}
    temperature: float = Field(0.1, ge=0, le=2)
    top_p: float = Field(0.2, gt=0, le=1)

    max_concurrent_activities: int = Field(20, ge=1)
    max_concurrent_workflow_tasks: int = Field(10, ge=1)
    max_concurrent_activity_tasks: int = Field(20, ge=1)
    # Session workflows kept in the worker's memory between turns; an evicted one is
    # rebuilt by replaying its history on its next turn.
    max_cached_workflows: int = Field(1000, ge=0)
    # Run workflow code in the SDK's sandbox (a fresh module environment per run, guarded
    # builtins on every activation). Off by default: it cost 27 % of the worker's CPU per
    # turn (loadtest/results/2026-12-04-*). The test suite's workers run sandboxed and the
    # replay tests replay through the sandbox, so non-deterministic workflow code is still
    # caught, before it ships rather than while it runs.
    workflow_sandbox: bool = False

    jwt_secret: SecretStr | None = None
    # Sign-in with an OIDC provider: RS256/ES256 tokens whose `iss` is exactly OIDC_ISSUER
    # and whose `aud` holds OIDC_AUDIENCE, checked against the issuer's published keys
    # (found by discovery, kept OIDC_JWKS_CACHE_SECONDS, fetched again on an unknown key
    # id), with OIDC_LEEWAY_SECONDS for clocks that differ. The user is OIDC_USER_CLAIM;
    # roles (agent, admin) come from OIDC_ROLES_CLAIM (a dotted path), renamed by
    # OIDC_ROLE_MAP (JSON: the provider's group -> agent or admin). JWT_SECRET may be set
    # too: its HS256 tokens are accepted beside them.
    oidc_issuer: str | None = Field(None, max_length=500)
    oidc_audience: str | None = Field(None, min_length=1, max_length=500)
    oidc_user_claim: str = Field("sub", min_length=1, max_length=100)
    oidc_roles_claim: str = Field("roles", max_length=200)
    oidc_role_map: dict[str, Literal["user", "agent", "admin"]] = Field(default_factory=dict)
    oidc_leeway_seconds: float = Field(60, ge=0, le=600)
    oidc_jwks_cache_seconds: float = Field(3600, ge=30, le=86_400)

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    # Messages one user may send per minute (sliding window in Redis); 0 turns it off.
    rate_limit_per_minute: int = Field(60, ge=0)
    # Largest request body (or WebSocket frame) the gateway accepts, chunked or not.
    max_request_bytes: int = Field(64 * 1024, ge=1024)
    # A token stream with nothing to send gets a keep-alive this often (SSE comment,
    # WebSocket frame), so proxies and clients keep it open through a slow first token.
    stream_keepalive_seconds: float = Field(15.0, gt=0, le=300)
    # Streams (SSE and WebSocket relays) one user may hold open on one gateway at once.
    max_streams_per_user: int = Field(20, ge=1, le=10_000)
    # Sessions one user may have at once (a bound on what one account can make us store);
    # 0 turns the limit off.
    max_sessions_per_user: int = Field(1000, ge=0)
    # Browser origins allowed to call the API cross-origin; empty = no CORS headers at all.
    cors_allow_origins: Annotated[list[str], NoDecode, BeforeValidator(_origins)] = []

    # How long start-up keeps retrying Temporal and Postgres (with backoff) before failing.
    startup_retry_seconds: float = Field(60.0, ge=0)
    # Observability: the worker's Prometheus endpoint (Temporal SDK metrics), unset = off;
    # OTLP/HTTP traces when an endpoint is set, e.g. http://otel-collector:4318.
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    otel_exporter_otlp_endpoint: HttpUrl | None = None
    otel_service_name: str = Field("chatbot", min_length=1)

    # Embedded LLM for `chatbot dev`: a model of chatbot.embedded.llm.CATALOG (checked
    # when dev starts it), or any GGUF file, served with the named model's settings.
    local_llm_model: str | None = Field(None, min_length=1, max_length=64)  # None: default
    local_llm_model_path: Path | None = None
    local_llm_port: int = Field(8081, ge=1, le=65535)
    # Embedded Redis for `chatbot dev` (not 6379, so it never collides with a system Redis).
    embedded_redis_port: int = Field(6390, ge=1, le=65535)

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.temporal_cloud_api_key is not None:
            missing = [
                name
                for name, value in (
                    ("TEMPORAL_CLOUD_NAMESPACE", self.temporal_cloud_namespace),
                    ("TEMPORAL_CLOUD_ADDRESS", self.temporal_cloud_address),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"TEMPORAL_CLOUD_API_KEY is set, so {' and '.join(missing)} must be set too"
                )
        databricks = {
            "DATABRICKS_HOST": self.databricks_host,
            "DATABRICKS_TOKEN": self.databricks_token,
            "DATABRICKS_ENDPOINT_NAME": self.databricks_endpoint_name,
            "DATABRICKS_INDEX_NAME": self.databricks_index_name,
        }
        given = [k for k, v in databricks.items() if v]
        if given and len(given) != len(databricks):
            absent = [k for k, v in databricks.items() if not v]
            raise ValueError(f"{', '.join(given)} set but {', '.join(absent)} missing")
        unknown_ids = sorted(set(self.pii_national_ids) - set(NATIONAL_IDS))
        if unknown_ids:
            raise ValueError(
                f"PII_NATIONAL_IDS names unknown kinds {', '.join(unknown_ids)}; known: "
                f"{', '.join(NATIONAL_IDS)}"
            )
        if self.artifact_store == "s3" and not self.artifact_s3_bucket:
            raise ValueError("ARTIFACT_STORE=s3 needs ARTIFACT_S3_BUCKET, the bucket to use")
        unknown = sorted(set(self.tools) - set(BUILTIN_TOOLS))
        if unknown:
            raise ValueError(
                f"TOOLS names unknown tools {', '.join(unknown)}; the built-in tools are "
                f"{', '.join(BUILTIN_TOOLS)}"
            )
        if self.oidc_issuer is not None:
            issuer = urlsplit(self.oidc_issuer)
            local = issuer.hostname in ("localhost", "127.0.0.1", "::1")
            if issuer.scheme != "https" and not (issuer.scheme == "http" and local):
                raise ValueError(
                    f"OIDC_ISSUER must be an https URL (http only on localhost), "
                    f"got {self.oidc_issuer!r}"
                )
            if not self.oidc_audience:
                raise ValueError(
                    "OIDC_ISSUER is set, so OIDC_AUDIENCE must be too: the client id (or API "
                    "identifier) the provider puts in the tokens' aud claim"
                )
        if self.environment == "production":
            if self.jwt_secret is None and self.oidc_issuer is None:
                raise ValueError(
                    "JWT_SECRET or OIDC_ISSUER must be set when ENVIRONMENT=production"
                )
            if self.jwt_secret is None:
                return self
            if self.jwt_secret.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ValueError("JWT_SECRET is a placeholder; set a random secret")
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters in production")
        return self

    @model_validator(mode="after")
    def _check_files(self) -> Settings:
        if self.temporal_tls_ca_path is not None and not self.temporal_tls_ca_path.is_file():
            raise ValueError(f"TEMPORAL_TLS_CA_PATH={self.temporal_tls_ca_path} is not a file")
        return self

    @property
    def temporal_cloud_enabled(self) -> bool:
        return self.temporal_cloud_api_key is not None

    @property
    def databricks_enabled(self) -> bool:
        return self.databricks_host is not None

    @property
    def templated_tool_replies(self) -> bool:
        if self.tool_replies == "auto":
            return self.openai_api_key is None
        return self.tool_replies == "template"

    @property
    def tool_calling_enabled(self) -> bool:
        if self.tool_calling == "auto":
            return self.openai_api_key is not None
        return self.tool_calling == "on"

    @property
    def pii_in_logs(self) -> PiiRedactor | None:
        return PiiRedactor(self.pii_national_ids) if self.pii_redaction != "off" else None

    @property
    def pii_in_prompts(self) -> PiiRedactor | None:
        return PiiRedactor(self.pii_national_ids) if self.pii_redaction == "logs+prompts" else None

    @property
    def cache_config(self) -> CacheConfig:
        return CacheConfig(
            mode=self.cache_mode,
            scope=self.cache_scope,
            ttl_seconds=self.cache_ttl_seconds,
            similarity=self.cache_similarity,
            semantic_entries=self.cache_semantic_entries,
        )

    @property
    def budget_limits(self) -> Limits:
        return Limits(
            tokens_per_day=self.budget_tokens_per_day,
            tokens_per_month=self.budget_tokens_per_month,
            cost_per_day=self.budget_cost_per_day,
            cost_per_month=self.budget_cost_per_month,
        )

    @property
    def prices(self) -> dict[str, ModelPrice]:
        return {**DEFAULT_MODEL_PRICES, **self.model_prices}

    @property
    def llm_configured(self) -> bool:
        """True when an external OpenAI-compatible endpoint is configured."""
        return self.openai_api_key is not None or self.openai_base_url is not None


def _format_error(err: ValidationError) -> str:
    lines = []
    secret_fields = {
        name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    }
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        msg = e["msg"].removeprefix("Value error, ")
        if field:
            shown = "" if field in secret_fields else f" (got {e['input']!r})"
            lines.append(f"  {field.upper()}: {msg}{shown}")
        else:
            lines.append(f"  {msg}")
    return "invalid configuration:\n" + "\n".join(lines)


def running_dev_env_file() -> Path | None:
    """The dev.env of a `chatbot dev` running from here (CHATBOT_HOME, else ./.chatbot),
    or None. Running means its dev.lock is held: a dev killed with SIGKILL leaves its
    dev.env behind, and a stack that is gone is no configuration."""
    home = Path(os.environ.get("CHATBOT_HOME") or ".chatbot")
    env_file, lock = home / "dev.env", home / "dev.lock"
    if not env_file.is_file():
        return None
    try:
        with lock.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted: nobody holds it
    except BlockingIOError:
        return env_file
    except OSError:  # no lock file, or one we cannot read
        return None
    return None


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and overrides), raising ConfigError on bad values.
    The files read: a running `chatbot dev`'s dev.env (the stack it started), then .env,
    then .env.cloud; the environment wins over all."""
    if "_env_file" not in overrides:
        running = running_dev_env_file()
        overrides["_env_file"] = ((running,) if running else ()) + CONFIG_FILES
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def load_settings_without_dev_stack() -> Settings:
    """Settings without what a running `chatbot dev` wrote: for that command itself, which
    must not take a stale file's stack (a SIGKILLed dev leaves one) for a configured one."""
    return load_settings(_env_file=CONFIG_FILES)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Tests call `get_settings.cache_clear()` to reload."""
    return load_settings()
