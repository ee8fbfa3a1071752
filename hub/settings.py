"""Configuration: one pydantic-settings class, environment prefix ``HUB_``, embedded defaults.

Nothing reads the environment at import time; :func:`get_settings` builds (and caches) the
settings on first use, and tests pass their own :class:`Settings` to ``create_app``.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class FileSecretsSource(PydanticBaseSettingsSource):
    """``HUB_<NAME>_FILE=/path``: the value of ``HUB_<NAME>`` read from a file (a mounted Kubernetes or
    Docker secret), trailing newline stripped. An explicit ``HUB_<NAME>`` wins over the file."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"HUB_{field_name.upper()}_FILE")
        if not path or f"HUB_{field_name.upper()}" in os.environ:
            return None, field_name, False
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n"), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(info, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """Every knob of the hub. Defaults give the embedded mode: SQLite under ./var, port 8080."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=None, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    #: Public base URL of the hub (what clients see); the FHIR base is ``{base_url}/fhir``.
    base_url: str = ""
    database_url: str = "sqlite+aiosqlite:///./var/hub.db"
    #: Pool size per worker for PostgreSQL.
    db_pool_size: int = 20
    var_dir: Path = Path("./var")
    #: Load the demo care network when the database is empty (``make run`` sets this).
    demo: bool = False
    max_body_bytes: int = 10 * 1024 * 1024
    default_page_size: int = 20
    max_page_size: int = 1000
    #: Maximum number of entries in one batch/transaction Bundle.
    max_bundle_entries: int = 10_000
    # -- limits on what one request may cost (each answered 4xx with an OperationOutcome) --------
    #: Nesting depth of a JSON (or XML) body: objects and arrays, counted from the root.
    max_json_depth: int = 100
    #: Items in any one JSON array (or repeated XML element) of a body; a Bundle's entries count too.
    max_array_length: int = 10_000
    #: Objects and arrays in one JSON body (XML: four times as many elements), counted before parsing.
    max_json_containers: int = 100_000
    #: Bodies larger than this are parsed and checked on a worker thread, not on the event loop.
    offload_parse_bytes: int = 256 * 1024
    #: Size (serialized JSON bytes) a resource may reach after any one PATCH operation.
    max_resource_bytes: int = 8 * 1024 * 1024
    #: Operations in one JSON Patch or FHIRPath Patch document.
    max_patch_operations: int = 1000
    #: Objects and arrays one patch may add to a resource (a ``copy`` of a list copies all its items).
    max_patch_added_nodes: int = 10_000
    #: Search parameters (criteria and result parameters) in one search.
    max_search_params: int = 40
    #: Links in one chain (``subject:Patient.organization.name`` is 2).
    max_chain_depth: int = 4
    #: Nested ``_has`` levels in one parameter.
    max_has_depth: int = 3
    #: Comma-separated values (alternatives) of one search parameter.
    max_values_per_param: int = 100
    #: Values over all parameters of a search, each weighted by 1 + its chain and ``_has`` depth.
    max_search_terms: int = 200
    #: PostgreSQL ``statement_timeout`` for the statements of a request (0: none). A request whose
    #: client goes away is cancelled, and with it the statement running for it.
    statement_timeout_ms: int = 30_000
    #: Validate writes against profiles (the hub's defaults and claimed meta.profile).
    validate_on_write: bool = True
    #: The development login page that stands in for DigiD (never in production).
    dev_login: bool = True
    #: External identity providers: "issuer|jwks_url" entries, comma separated.
    external_issuers: str = ""
    audit_enabled: bool = True
    log_level: str = "info"
    #: ``json`` (one object per line, for log shipping; the production default) or ``text``.
    log_format: Literal["auto", "json", "text"] = "auto"
    #: One JSON line per request on the ``hub.access`` logger.
    access_log: bool = True
    #: Serve Prometheus metrics at ``/metrics``.
    metrics: bool = True
    workers: int = 1
    #: Run the notification delivery worker inside ``hub serve`` (default: on for SQLite outside tests;
    #: with PostgreSQL run ``hub worker`` processes instead).
    events_in_process: bool | None = None
    #: How often an idle delivery worker looks for work, and how long it holds a subscription.
    events_poll_seconds: float = 0.2
    events_lease_seconds: float = 30.0
    #: Backoff after a failed delivery: base * 2^(failures-1), jittered, capped.
    events_backoff_base: float = 1.0
    events_backoff_cap: float = 300.0
    #: Consecutive failures after which a subscription's status becomes error, and then off.
    events_error_after: int = 3
    events_off_after: int = 10
    #: Seconds ``hub serve`` waits for in-flight requests at shutdown (SIGTERM) before it closes them.
    graceful_timeout: int = 30
    #: Addresses of the TLS-terminating proxies whose X-Forwarded-For/-Proto headers are trusted
    #: (uvicorn's ``forwarded_allow_ips``, comma separated, ``*`` for any). Required in production.
    forwarded_allow_ips: str = ""
    extra_settings: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.base_url:
            self.base_url = f"http://{self.host}:{self.port}"
        self.base_url = self.base_url.rstrip("/")
        if self.log_format == "auto":
            self.log_format = "json" if self.environment == "production" else "text"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, FileSecretsSource(settings_cls), dotenv_settings, file_secret_settings

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def events_worker_in_process(self) -> bool:
        if self.events_in_process is not None:
            return self.events_in_process
        return self.is_sqlite and self.environment != "test"

    @property
    def key_dir(self) -> Path:
        return self.var_dir / "keys"


@cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()


#: Written by ``hub serve`` in its var directory: the base URL and database it serves.
SERVE_FILE = "hub-serve.json"
_RECORDED = {"base_url": ("HUB_BASE_URL", "HUB_PORT", "HUB_HOST"), "database_url": ("HUB_DATABASE_URL",)}


def record_serving(settings: Settings) -> None:
    """Note what the hub started on this var directory serves, so that the commands run beside it
    (``hub token``, ``hub apps``, ``hub audit``) reach the same hub without repeating its settings."""
    import json
    import os

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    path = settings.var_dir / SERVE_FILE
    path.write_text(json.dumps({"base_url": settings.base_url, "database_url": settings.database_url}) + "\n")
    os.chmod(path, 0o600)  # the database URL may hold a password


def serving_settings() -> Settings:
    """The settings for a command run beside a hub: the environment's, and for what the environment
    does not say (the base URL, the database), what ``hub serve`` recorded in the var directory."""
    import json
    import os

    settings = get_settings()
    try:
        recorded = json.loads((settings.var_dir / SERVE_FILE).read_text())
    except (OSError, ValueError):
        return settings
    if not isinstance(recorded, dict):
        return settings
    update = {
        name: str(recorded[name])
        for name, env in _RECORDED.items()
        if isinstance(recorded.get(name), str) and not any(os.environ.get(e) for e in env)
    }
    return settings.model_copy(update=update) if update else settings
