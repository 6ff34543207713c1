"""Configuration, read once from the environment (and ``.data/stack.env`` written by
``make run``, so CLI commands find the running development stack).

Every entry point that signs, encrypts or hashes with the secrets (the worker, the API,
the CLI commands that talk to Temporal, ``make run``) calls :func:`check_settings` before
it does anything: in production (``JOURNEYS_ENV``'s default) a secret left at its
development value, which is public in this repository, is refused with a sentence saying
what to set. The development mail catcher and the database-only CLI commands hold no
secret and need only :meth:`Settings.require_database_url`. What a process cannot start
with is a :class:`ConfigurationError` (its tree in ``settings.errors``); entry points turn
it into exit 1 with its sentence.

Workflows never import this module: they receive everything they need as input."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import (
    ConfigurationError,
    MissingSetting,
    PayloadKeyError,
    StartupRefused,
    UnsafeSettings,
)
from .payload_keys import parse_keys

__all__ = [
    "DATA_DIR",
    "DEV_ID_SECRET",
    "DEV_LINK_SECRET",
    "DEV_PAYLOAD_KEYS",
    "STACK_ENV",
    "ConfigurationError",
    "MissingSetting",
    "PayloadKeyError",
    "Settings",
    "StartupRefused",
    "UnsafeSettings",
    "check_settings",
    "get_settings",
    "unsafe_defaults",
]

DATA_DIR = Path(".data")
STACK_ENV = DATA_DIR / "stack.env"
DEV_LINK_SECRET = "dev-link-secret"  # public: anyone could sign unsubscribe links with it
MIN_SECRET_LENGTH = 16
# development defaults, public on purpose: outside development they are refused
# (settings.check_settings). The key is base64(sha256("journeys-dev-payload-key")).
DEV_PAYLOAD_KEYS = "dev:DHuizFFh0hLaSqjAxB1W37CtaUaONe5q8hReP2MtIvI="
DEV_ID_SECRET = "dev-id-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=STACK_ENV, extra="ignore")

    temporal_address: str = Field("localhost:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", alias="TEMPORAL_NAMESPACE")
    temporal_tls: bool = Field(False, alias="TEMPORAL_TLS")
    temporal_tls_cert: Path | None = Field(None, alias="TEMPORAL_TLS_CERT")
    temporal_tls_key: Path | None = Field(None, alias="TEMPORAL_TLS_KEY")
    temporal_api_key: str | None = Field(None, alias="TEMPORAL_API_KEY")
    task_queue: str = Field("journeys", alias="JOURNEYS_TASK_QUEUE")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    data_dir: Path = Field(DATA_DIR, alias="JOURNEYS_DATA_DIR")
    rules_dir: Path = Field(Path("rules"), alias="JOURNEYS_RULES")
    templates_dir: Path = Field(Path("templates"), alias="JOURNEYS_TEMPLATES")
    max_cached_workflows: int = Field(10_000, alias="JOURNEYS_MAX_CACHED_WORKFLOWS")
    # How long a customer's next task waits for the worker that has it cached before any
    # worker may take it: long keeps throughput under a backlog, short recovers faster
    # from a crashed worker (docs/operations.md).
    sticky_timeout_seconds: float = Field(120.0, alias="JOURNEYS_STICKY_TIMEOUT_SECONDS", gt=0)
    # On SIGTERM the worker stops polling and lets in-flight activities finish for this
    # long before cancelling them: past an action's timeout (60 s), a send under way is
    # finished and recorded, never cut off between the relay's answer and its record.
    graceful_shutdown_seconds: float = Field(75.0, alias="JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS", ge=0)
    # the worker's and the API's young-generation GC threshold (orchestration.heap); 0:
    # Python's defaults, and nothing frozen
    gc_young_threshold: int = Field(50_000, alias="JOURNEYS_GC_YOUNG_THRESHOLD", ge=0)
    # Temporal's workflow sandbox (determinism guard); tests always run with it
    workflow_sandbox: bool = Field(True, alias="JOURNEYS_WORKFLOW_SANDBOX")
    env: Literal["development", "production"] = Field("production", alias="JOURNEYS_ENV")
    dev_write_key: str | None = Field(None, alias="JOURNEYS_DEV_WRITE_KEY")
    dev_admin_token: str | None = Field(None, alias="JOURNEYS_DEV_ADMIN_TOKEN")
    api_host: str = Field("127.0.0.1", alias="JOURNEYS_API_HOST")
    api_port: int = Field(8000, alias="JOURNEYS_API_PORT")
    # the level of the API's ``ingest`` loggers; DEBUG shows each delivery round of the outbox
    log_level: str = Field("INFO", alias="JOURNEYS_LOG_LEVEL")
    rate_limit: float = Field(500.0, alias="JOURNEYS_RATE_LIMIT", gt=0)  # requests/s per key
    max_outbox: int = Field(1_000_000, alias="JOURNEYS_MAX_OUTBOX", gt=0)
    dispatcher: bool = Field(True, alias="JOURNEYS_DISPATCHER")
    # links in messages (surveys, unsubscribe) point here: the API as customers reach it
    public_url: str = Field("http://127.0.0.1:8000", alias="JOURNEYS_PUBLIC_URL")
    # signs unsubscribe links; must be set outside development
    link_secret: str = Field(DEV_LINK_SECRET, alias="JOURNEYS_LINK_SECRET")
    # encrypt every Temporal payload (orchestration.codec): "id:base64key,..."; the first key
    # encrypts, all decrypt (rotation); must be set outside development
    payload_keys: str = Field(DEV_PAYLOAD_KEYS, alias="JOURNEYS_PAYLOAD_KEYS")
    # keys the hash of contact-like customer ids in workflow ids and search attributes;
    # must be set outside development, and never changed afterwards (docs/operations.md)
    id_secret: str = Field(DEV_ID_SECRET, alias="JOURNEYS_ID_SECRET")
    # browser origins allowed to call the codec endpoint (the Temporal UI), comma-separated
    codec_cors_origins: str = Field(
        "http://localhost:8233,http://127.0.0.1:8233", alias="JOURNEYS_CODEC_CORS_ORIGINS"
    )
    # email over SMTP (make run points it at its development mail catcher)
    smtp_host: str = Field("127.0.0.1", alias="SMTP_HOST")
    smtp_port: int = Field(1025, alias="SMTP_PORT")
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(False, alias="SMTP_STARTTLS")
    smtp_tls: bool = Field(False, alias="SMTP_TLS")  # implicit TLS (port 465)
    smtp_timeout_seconds: float = Field(30.0, alias="SMTP_TIMEOUT_SECONDS", gt=0)
    mail_from: str = Field("Journeys <journeys@localhost>", alias="JOURNEYS_MAIL_FROM")
    mailcatcher_port: int = Field(1025, alias="JOURNEYS_MAILCATCHER_PORT")
    # SMS: an HTTP provider that takes {"to", "body"} as JSON
    sms_url: str | None = Field(None, alias="JOURNEYS_SMS_URL")
    sms_token: str | None = Field(None, alias="JOURNEYS_SMS_TOKEN")
    # webhooks: signed with HMAC-SHA256 (Journeys-Signature: t=...,v1=...)
    webhook_secret: str | None = Field(None, alias="JOURNEYS_WEBHOOK_SECRET")
    # the signing secret of the Stripe webhook endpoint (whsec_...): without it
    # /v1/sources/stripe refuses every delivery (write keys are public)
    stripe_webhook_secret: str | None = Field(None, alias="JOURNEYS_STRIPE_WEBHOOK_SECRET")
    # outbound HTTP may reach private, loopback and link-local addresses only when listed
    # here (comma-separated hosts or CIDRs); everything public is allowed
    outbound_allow: str = Field("", alias="JOURNEYS_OUTBOUND_ALLOW")
    outbound_timeout_seconds: float = Field(10.0, alias="JOURNEYS_OUTBOUND_TIMEOUT_SECONDS", gt=0)

    def require_database_url(self) -> str:
        """``DATABASE_URL``, or :class:`MissingSetting` saying how to get one: the one
        place that sentence is written, for every entry point that needs PostgreSQL."""
        if not self.database_url:
            raise MissingSetting(
                "DATABASE_URL is not set and no stack is running: start one with 'make run'"
                " (it writes .data/stack.env), or set DATABASE_URL=postgresql://user:pass@host/db"
            )
        return self.database_url


@functools.cache
def get_settings() -> Settings:
    """The process's settings; tests call ``get_settings.cache_clear()`` after patching env."""
    return Settings()


def unsafe_defaults(settings: Settings) -> list[str]:
    """One sentence per setting that production must not run with; none in development."""
    if settings.env == "development":
        return []
    found = []
    if settings.dev_write_key or settings.dev_admin_token:
        found.append(
            "JOURNEYS_DEV_WRITE_KEY / JOURNEYS_DEV_ADMIN_TOKEN are set but JOURNEYS_ENV is "
            "not 'development': refusing to run on development secrets. Unset them and "
            "create keys with 'journeys keys create'."
        )
    if settings.link_secret == DEV_LINK_SECRET or len(settings.link_secret) < MIN_SECRET_LENGTH:
        found.append(
            "JOURNEYS_LINK_SECRET is the development default (or shorter than "
            f"{MIN_SECRET_LENGTH} characters): set it to a long random value, the same for "
            "the worker and the API (it signs unsubscribe links), e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    dev_id, dev_key = DEV_PAYLOAD_KEYS.split(":", 1)
    specs = [part.strip().split(":", 1) for part in settings.payload_keys.split(",")]
    try:
        parse_keys(settings.payload_keys)
    except PayloadKeyError as exc:
        found.append(f"JOURNEYS_PAYLOAD_KEYS: {exc}")
    if any(spec[0] == dev_id or spec[-1] == dev_key for spec in specs):
        found.append(
            "JOURNEYS_PAYLOAD_KEYS holds the development key: set it to keys of your own"
            " (they encrypt everything Temporal stores), e.g. "
            "python -c 'from orchestration.codec import new_key_spec; print(new_key_spec(\"k1\"))'"
        )
    if settings.id_secret == DEV_ID_SECRET or len(settings.id_secret) < MIN_SECRET_LENGTH:
        found.append(
            "JOURNEYS_ID_SECRET is the development default (or shorter than "
            f"{MIN_SECRET_LENGTH} characters): set it to a long random value once (it keys "
            "the hashed customer ids in workflow ids), e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return found


def check_settings(settings: Settings) -> None:
    """Refuse to start in production on development or public secrets
    (:class:`UnsafeSettings`); a development stack says so with ``JOURNEYS_ENV=development``."""
    found = unsafe_defaults(settings)
    if found:
        raise UnsafeSettings(
            "\n".join(
                [
                    *found,
                    "(JOURNEYS_ENV is 'production' unless set; a development stack sets "
                    "JOURNEYS_ENV=development.)",
                ]
            )
        )
