"""Configuration: one TOML file, one typed model per section, loaded once and passed down.

Lookup order for the file: ``--config PATH``, else ``$FNOTIFY_CONFIG``, else ``./fnotify.toml``;
a missing default file means "all defaults". Every secret can also come from the environment
(``FNOTIFY_TELEGRAM_TOKEN``, ``FNOTIFY_EMAIL_PASSWORD``, ``FNOTIFY_SMS_AUTH_TOKEN``,
``FNOTIFY_STORAGE_URL``...) or from a systemd credential (``$CREDENTIALS_DIRECTORY/telegram_token`` and so
on). Secrets are ``SecretStr`` and never print.

The sections live in ``base`` (shared), ``channels`` (telegram, email, sms) and here (the rest, the
whole ``Config`` and loading); every name is importable from ``daemon.config``.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from daemon.config.base import MAX_LINK_TTL as MAX_LINK_TTL
from daemon.config.base import MAX_TIMEOUT as MAX_TIMEOUT
from daemon.config.base import MIN_HTTP_TOKEN as MIN_HTTP_TOKEN
from daemon.config.base import Id32 as Id32
from daemon.config.base import Section as Section
from daemon.config.base import split_listen as split_listen
from daemon.config.channels import EmailConfig as EmailConfig
from daemon.config.channels import SmsConfig as SmsConfig
from daemon.config.channels import TelegramConfig as TelegramConfig
from daemon.core.errors import ConfigError
from daemon.core.models import Channel
from daemon.credentials import read_credential
from daemon.database_url import PostgresUrl, parse_postgres_url
from daemon.paths import config_path, default_state_dir, socket_path

# (section, key) -> environment variable / credential file name
SECRET_SOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("telegram", "token"): ("FNOTIFY_TELEGRAM_TOKEN", "telegram_token"),
    ("telegram", "webhook_secret"): ("FNOTIFY_TELEGRAM_WEBHOOK_SECRET", "telegram_webhook_secret"),
    ("email", "password"): ("FNOTIFY_EMAIL_PASSWORD", "email_password"),
    ("sms", "auth_token"): ("FNOTIFY_SMS_AUTH_TOKEN", "sms_auth_token"),
    ("http", "tokens"): ("FNOTIFY_HTTP_TOKENS", "http_tokens"),
    ("storage", "url"): ("FNOTIFY_STORAGE_URL", "storage_url"),
}


class DaemonConfig(Section):
    state_dir: Path = Field(default_factory=default_state_dir)
    """Directory holding the SQLite database (created if missing)."""
    socket: Path | None = None
    """Unix socket path; default ``$RUNTIME_DIRECTORY/fnotify.sock`` or ``<state_dir>/fnotify.sock``."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message and, on attempt lines,
    notification_id, recipient_id, channel, outcome, duration_ms), secrets masked as in text."""
    max_in_flight: int = Field(default=256, ge=1, le=10_000)
    """How many attempts may be in flight at once across all channels."""
    shutdown_grace: float = Field(default=10.0, ge=0, le=600)
    """Seconds SIGTERM waits for in-flight attempts before recording them as pending."""
    allowed_uids: tuple[Id32, ...] = ()
    """Users allowed on the socket (checked with SO_PEERCRED); with allowed_gids empty too, anyone who can
    open the 0660 socket file. The daemon's own user is not implied."""
    allowed_gids: tuple[Id32, ...] = ()
    """Groups (primary or supplementary) allowed on the socket, besides allowed_uids."""
    max_connections: int = Field(default=256, ge=1, le=10_000)
    """Socket connections served at once; more are answered "busy" and closed."""
    retention_days: float = Field(default=90, gt=0, le=36_500)
    """Final notifications (and their attempt logs) older than this are deleted, checked daily."""
    idle_timeout: float = Field(default=300.0, gt=0, le=86_400)
    """Seconds a socket connection may sit without sending a request before it is closed
    (not applied to a ``subscribe`` stream)."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def database(self) -> Path:
        return self.state_dir / "fnotify.db"

    @property
    def socket_path(self) -> Path:
        return socket_path(self.socket, self.state_dir)


class RetryConfig(Section):
    attempts_per_channel: int = Field(default=3, ge=1, le=100)
    """Tries on one channel (transient failures) before failing over to the next."""
    backoff_initial: float = Field(default=2.0, ge=0, le=3600)
    """Seconds before the first retry; doubles each time, plus up to 20% jitter."""
    backoff_max: float = Field(default=60.0, ge=0, le=86_400)
    """Cap on one backoff wait (a provider's retry_after is honoured up to 10x this)."""

    @model_validator(mode="after")
    def _order(self) -> RetryConfig:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max: must be >= backoff_initial")
        return self


class BreakerConfig(Section):
    threshold: int = Field(default=5, ge=0, le=1000)
    """Consecutive transient failures on a channel that mark it down (0: never)."""
    cooldown: float = Field(default=30.0, gt=0, le=86_400)
    """Seconds a down channel is skipped ("channel down": notifications fail over at once) before
    one probe attempt is let through; it closes the breaker or keeps the channel down."""


class ChainConfig(Section):
    default: tuple[Channel, ...] = (Channel.TELEGRAM, Channel.EMAIL, Channel.SMS)

    @field_validator("default", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("default")
    @classmethod
    def _non_empty_unique(cls, value: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if not value:
            raise ValueError("must name at least one channel")
        if len(set(value)) != len(value):
            raise ValueError("a channel may appear only once")
        return value


class HttpConfig(Section):
    enabled: bool = False
    """Serve the HTTP API (off by default: the Unix socket needs no network exposure)."""
    listen: str = "127.0.0.1:8080"
    """``host:port`` to listen on; ``"[::1]:8080"`` for IPv6, port 0 for any free port."""
    tokens: tuple[SecretStr, ...] = ()
    """Bearer tokens accepted: each the token itself or ``"sha256:<hex digest>"`` of it. Also from
    ``FNOTIFY_HTTP_TOKENS`` or the ``http_tokens`` credential (comma-separated)."""
    max_connections: int = Field(default=256, ge=1, le=100_000)
    """Connections open at once on each HTTP listener (this API; the Telegram webhook and [metrics] too). At the cap
    the connection idle longest is closed to make room, or, when all are busy, the newcomer gets 503."""
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds a connection may take to send a complete request header, from when it opens or from
    its previous request (kept alive); then it is closed."""
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a request body may take to arrive in full after its header; then the connection is closed."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("tokens")
    @classmethod
    def _token_forms(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for token in value:
            raw = token.get_secret_value()
            if raw.startswith("sha256:"):
                digest = raw.removeprefix("sha256:")
                if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
                    raise ValueError("a sha256: entry must be followed by 64 hex digits")
            elif len(raw) < MIN_HTTP_TOKEN:
                # a short bearer token can be guessed over the network
                raise ValueError(f"each token must be at least {MIN_HTTP_TOKEN} characters")
        return value

    @model_validator(mode="after")
    def _tokens_when_enabled(self) -> HttpConfig:
        if self.enabled and not self.tokens:
            raise ValueError("tokens: required when [http] enabled = true (or set FNOTIFY_HTTP_TOKENS)")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)


class MetricsConfig(Section):
    enabled: bool = False
    """Serve Prometheus metrics at ``/metrics`` (and the ``/healthz``, ``/readyz`` probes) on ``listen``."""
    listen: str = "127.0.0.1:9464"
    """``host:port``; no token is asked for, so keep it on loopback or a private network."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)


MAX_BUNDLE_WINDOW = 3600.0
"""The longest bundling window (seconds): a longer wait for company is an outage of its own."""


class BundleConfig(Section):
    window: float = Field(default=0.0, ge=0, le=MAX_BUNDLE_WINDOW)
    """Seconds a notification below ``high`` waits for others to the same recipient (on the same channel)
    to go out with it as one message ("3 notifications: ..."); 0 (the default): no bundling."""


class StorageConfig(Section):
    url: SecretStr | None = None
    """Unset: SQLite in ``[daemon] state_dir``. ``postgresql://user:password@host:port/dbname`` (or
    ``postgres://``): a PostgreSQL database several daemons share. A secret (it holds the password): also
    ``FNOTIFY_STORAGE_URL`` or the ``storage_url`` credential."""
    lease: float = Field(default=30.0, ge=0.5, le=3600)
    """Seconds a claimed notification stays this daemon's without a renewal (renewed every lease / 3
    while its attempt runs); a daemon that dies leaves leases that expire, and another takes the rows over."""

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # an empty variable or credential means "not set": SQLite
        parse_postgres_url(value.get_secret_value())  # ValueError: names what is wrong, never the URL
        return value

    @property
    def postgres(self) -> PostgresUrl | None:
        """The parsed URL, or None for SQLite."""
        return parse_postgres_url(self.url.get_secret_value()) if self.url is not None else None


class Config(Section):
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    chain: ChainConfig = Field(default_factory=ChainConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    bundle: BundleConfig = Field(default_factory=BundleConfig)

    source: Path | None = Field(default=None, exclude=True)
    """The file this was loaded from (None: defaults only)."""
    file_secrets: tuple[str, ...] = Field(default=(), exclude=True)
    """The secret keys written in that file itself (not from the environment or credentials)."""

    def secrets(self) -> list[str]:
        """Every secret value, for the log and attempt-log redactor."""
        values = [self.telegram.token, self.email.password, self.sms.auth_token, self.telegram.webhook_secret]
        values += [t for t in self.http.tokens if not t.get_secret_value().startswith("sha256:")]
        secrets = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        postgres = self.storage.postgres
        if postgres is not None:  # the whole URL too: an error may quote it with the password percent-encoded
            secrets += [s for s in (postgres.password, postgres.dsn) if s]
        return secrets


def exposed_secrets(config: Config) -> str | None:
    """A warning when the config file holds secrets and every user on the machine may read it."""
    if config.source is None or not config.file_secrets:
        return None
    try:
        mode = config.source.stat().st_mode
    except OSError:
        return None
    if not mode & stat.S_IROTH:
        return None
    return (f"{config.source} holds secrets ({', '.join(config.file_secrets)}) and every user can read it "
            f"(mode {stat.S_IMODE(mode):04o}): chmod o-r it (docs/install.md: 0640, group failover-notify), "
            "or move the secrets to systemd credentials or the environment")


def _secrets_in(raw: dict[str, Any]) -> tuple[str, ...]:
    """The secret keys present in a config file's own mapping (a sha256: token digest is no secret)."""
    found = []
    for section, key in SECRET_SOURCES:
        value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
        if key == "tokens" and isinstance(value, list):
            value = [t for t in value if not (isinstance(t, str) and t.startswith("sha256:"))]
        if value:
            found.append(f"[{section}] {key}")
    return tuple(found)


def _read_secret_overrides(raw: dict[str, Any]) -> None:
    for (section, key), (env_name, cred_name) in SECRET_SOURCES.items():
        value: str | None = os.environ.get(env_name)
        if value is None:  # an empty credential counts as unset (the unit's SetCredential= fallback)
            value = read_credential(cred_name)
        if value is not None:
            if key == "tokens":
                raw.setdefault(section, {})[key] = [t.strip() for t in value.split(",") if t.strip()]
            else:
                raw.setdefault(section, {})[key] = value


def _describe(exc: PydanticValidationError, path: Path | None) -> str:
    where = str(path) if path else "configuration"
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]" if loc else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{where}: {key}: {msg}".replace(" : ", ": "))
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], source: Path | None = None) -> Config:
    """Validate a config mapping (already merged with secrets from the environment)."""
    try:
        config = Config.model_validate(raw)
    except PydanticValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    return config.model_copy(update={"source": source})


def load_config(explicit: str | os.PathLike[str] | None = None, *, client: bool = False) -> Config:
    """Load, merge environment secrets, validate. Raises ConfigError naming file, key and reason.

    ``client=True`` is for commands that only talk to the daemon: they need the socket path, so
    a channel section that does not validate here (its secrets held only by the service's
    credentials, say) does not stop them; only ``[daemon]`` must be valid.
    """
    path, required = config_path(explicit)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    elif required:
        raise ConfigError(f"{path}: no such file")
    file_secrets = _secrets_in(raw)
    _read_secret_overrides(raw)
    source = path if path.exists() else None
    try:
        config = parse_config(raw, source)
    except ConfigError:
        if not client:
            raise
        config = parse_config({"daemon": raw.get("daemon", {})}, source)
    config = config.model_copy(update={"file_secrets": file_secrets})
    if config.source is not None:
        # a relative state_dir / socket is taken relative to the config file, not the cwd
        base = config.source.resolve().parent
        daemon = config.daemon
        updates: dict[str, Any] = {}
        if not daemon.state_dir.is_absolute() and "state_dir" in raw.get("daemon", {}):
            updates["state_dir"] = base / daemon.state_dir
        if daemon.socket is not None and not daemon.socket.is_absolute():
            updates["socket"] = base / daemon.socket
        if updates:
            config = config.model_copy(update={"daemon": daemon.model_copy(update=updates)})
    return config
