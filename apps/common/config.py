"""Settings of one app, read from the environment under its own prefix (``PGO_``, ``ADMIN_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AppSettings(BaseSettings):
    """What a backend-for-frontend needs to know: where the hub is, where it itself is, its secrets."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    #: The hub's public root URL (the FHIR base is ``{hub_url}/fhir``).
    hub_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8081
    #: This app's public root URL (the OAuth redirect URI is ``{public_url}/callback``).
    public_url: str = ""
    #: The OAuth client id; empty: read from (or registered into) ``state_dir``.
    client_id: str = ""
    #: Where the app keeps its registration and session key (``./var/apps/<name>``).
    state_dir: Path = Path("./var/apps")
    #: A urlsafe-base64 Fernet key for the session cookie; empty: generated once into ``state_dir``.
    session_key: str = ""
    #: Log out after this many seconds without a request.
    idle_timeout: int = 15 * 60
    #: Never keep a session longer than this.
    max_session: int = 8 * 60 * 60
    #: Seconds between the polls that feed live updates (until the hub pushes notifications).
    poll_interval: float = 5.0
    #: Cookies only over HTTPS (on by default when ``public_url`` is https).
    secure_cookies: bool | None = None
    #: The ``hub`` command used to register the app at first start.
    hub_command: str = "hub"
    log_level: str = "info"
    extra: dict[str, str] = Field(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        self.hub_url = self.hub_url.rstrip("/")
        if self.secure_cookies is None:
            self.secure_cookies = self.public_url.startswith("https://")

    @property
    def fhir_base(self) -> str:
        return f"{self.hub_url}/fhir"

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/callback"


class PgoSettings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="PGO_", env_file=None, extra="ignore")
    port: int = 8081


class AdminSettings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="ADMIN_", env_file=None, extra="ignore")
    port: int = 8082
