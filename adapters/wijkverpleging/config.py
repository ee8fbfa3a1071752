"""The wijkverpleging adapter's configuration: the hub, its own credentials, its state, its counterparts.

A JSON file (``adapter-wijkverpleging serve --config adapter-wijkverpleging.json``)::

    {
      "hub_base": "http://127.0.0.1:8080/fhir",
      "client_id": "sys-...",                   # from `hub apps add --system --ura <the organisation's URA>`
      "private_key": "var/adapter-wijkverpleging/key.pem",
      "state": "var/adapter-wijkverpleging/state.sqlite",
      "ura": "00056789",                         # the nursing organisation this adapter acts for
      "listen": {"host": "127.0.0.1", "port": 8090},
      "senders": [{"id": "ziekenhuis-west", "fhir_base": "https://xis.example/fhir/stu3"}],
      "receivers": [{"id": "vvt-oost", "notify_url": "https://vvt.example/fhir/Task", "token": "..."}],
      "nursing_system": {"fhir_base": "https://ecd.example/fhir/stu3", "careplans": ["nursing-plan-1"]}
    }

A sender notifies at ``POST /senders/{id}/Task``; the adapter only ever pulls from the configured base of
that sender (never from a URL a notification names). A receiver pulls what was announced to it from
``/stu3/{id}/...`` with its token. Paths are relative to the configuration file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator


class SenderConfig(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    fhir_base: str


class ReceiverConfig(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    notify_url: str
    token: str = Field(min_length=16)


class NursingSystemConfig(BaseModel):
    """The organisation's own nursing system (FHIR STU3) and the nursing care plans to keep in the hub."""

    fhir_base: str
    careplans: list[str] = []


class ListenConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)


class WijkverplegingConfig(BaseModel):
    hub_base: str
    token_url: str = ""
    client_id: str
    private_key: Path
    state: Path
    ura: str = Field(pattern=r"^[0-9]{8}$")
    listen: ListenConfig = ListenConfig()
    mirror_interval: float = Field(default=30.0, gt=0)
    senders: list[SenderConfig]
    receivers: list[ReceiverConfig] = []
    nursing_system: NursingSystemConfig | None = None

    @field_validator("senders")
    @classmethod
    def _distinct(cls, value: list[SenderConfig]) -> list[SenderConfig]:
        ids = [s.id for s in value]
        if len(set(ids)) != len(ids):
            raise ValueError("senders need distinct ids")
        return value

    @classmethod
    def load(cls, path: Path) -> WijkverplegingConfig:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        config = cls.model_validate(data)
        root = path.resolve().parent
        config.private_key = root / config.private_key
        config.state = root / config.state
        return config

    def resolved_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        base = self.hub_base.rstrip("/")
        return (base[: -len("/fhir")] if base.endswith("/fhir") else base) + "/auth/token"

    def sender_base(self, sender_id: str) -> str | None:
        return next((s.fhir_base for s in self.senders if s.id == sender_id), None)


__all__ = ["ListenConfig", "ReceiverConfig", "SenderConfig", "WijkverplegingConfig"]
