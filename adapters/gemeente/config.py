"""Settings of the gemeente adapter (environment ``ADAPTER_GEMEENTE_*`` or command-line options)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class GemeenteSettings(BaseSettings):
    """Where the hub is, who the adapter is, and where it keeps its state."""

    model_config = SettingsConfigDict(env_prefix="ADAPTER_GEMEENTE_")

    #: The hub's FHIR base, e.g. http://127.0.0.1:8080/fhir.
    hub_base: str = "http://127.0.0.1:8080/fhir"
    #: The token endpoint; default ``{hub_base without /fhir}/auth/token``.
    token_url: str = ""
    client_id: str = ""
    private_key: Path = Path("var/adapter-gemeente/key.pem")
    #: The gemeente: CBS code (4 digits), URA and name (its Organization in the hub).
    gemeente_code: str = "0384"
    ura: str = "00045678"
    name: str = "Gemeente, Wmo-team"
    #: The adapter's own durable state (processed messages, what it sent, the poll cursor).
    state: Path = Path("var/adapter-gemeente/state.sqlite")
    products: Path | None = None
    max_message_bytes: int = 1_000_000
    #: WMO301s arriving together are applied as one group (one read, one transaction): at most this
    #: many per group, and this many groups in flight at once.
    group_size: int = 50
    groups_in_flight: int = 2

    def resolved_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        base = self.hub_base.rstrip("/")
        return (base[: -len("/fhir")] if base.endswith("/fhir") else base) + "/auth/token"


@dataclass(frozen=True)
class Catalogue:
    """Allowed product codes per category; a category absent from it allows any code."""

    codes: dict[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, categorie: str, code: str | None) -> bool:
        if code is None or categorie not in self.codes:
            return True
        return code in self.codes[categorie]

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        if path is None:
            raw = resources.files("adapters.gemeente").joinpath("data/producten.json").read_text("utf-8")
        else:
            raw = path.read_text("utf-8")
        data = json.loads(raw)
        return cls({k: frozenset(v) for k, v in data["categories"].items()})
