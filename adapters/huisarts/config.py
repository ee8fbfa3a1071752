"""The huisarts adapter's configuration: the hub, its own credentials, its state, and the practices.

A JSON file (``adapter-huisarts sync --config adapter-huisarts.json``)::

    {
      "hub_base": "http://127.0.0.1:8080/fhir",
      "client_id": "sys-...",                       # from `hub apps add --system --ura <the GP's URA>`
      "private_key": "var/adapter-huisarts/key.pem",
      "state": "var/adapter-huisarts/state.sqlite",
      "practices": [
        {"id": "de-linde", "name": "Huisartsenpraktijk De Linde", "ura": "00012345",
         "fhir_base": "https://his.example/fhir", "fhir_version": "stu3", "token_file": "secrets/linde.token"}
      ]
    }

Each practice has its own credentials for its GP system (``token`` or ``token_file``); paths are
relative to the configuration file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from adapters.huisarts.sync import Practice


class PracticeConfig(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str
    ura: str = Field(pattern=r"^[0-9]{8}$")
    fhir_base: str
    fhir_version: str = Field(pattern=r"^(stu3|r4)$")
    token: str | None = None
    token_file: Path | None = None


class HuisartsConfig(BaseModel):
    hub_base: str
    token_url: str = ""
    client_id: str
    private_key: Path
    state: Path
    practices: list[PracticeConfig]

    @field_validator("practices")
    @classmethod
    def _distinct(cls, value: list[PracticeConfig]) -> list[PracticeConfig]:
        ids = [p.id for p in value]
        if len(set(ids)) != len(ids) or not ids:
            raise ValueError("practices need distinct ids (and at least one practice)")
        return value

    @classmethod
    def load(cls, path: Path) -> HuisartsConfig:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        config = cls.model_validate(data)
        root = path.resolve().parent
        config.private_key = root / config.private_key
        config.state = root / config.state
        for p in config.practices:
            if p.token_file is not None:
                p.token_file = root / p.token_file
        return config

    def resolved_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        base = self.hub_base.rstrip("/")
        return (base[: -len("/fhir")] if base.endswith("/fhir") else base) + "/auth/token"

    def practice(self, p: PracticeConfig) -> Practice:
        token = p.token if p.token is not None else (p.token_file.read_text().strip() if p.token_file else "")
        if not token:
            raise ValueError(f"practice {p.id}: no token or token_file for its GP system")
        return Practice(p.id, p.name, p.ura, p.fhir_base, p.fhir_version, token)


__all__ = ["HuisartsConfig", "PracticeConfig"]
