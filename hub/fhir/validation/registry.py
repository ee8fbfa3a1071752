"""Where conformance resources come from: the R4 core package, the hub's profiles and Nictiz's zib2020.

Resources are found by canonical url. Sources are JSON folders (the hub's own package), compact
packages (a gzip'd JSON array, as the hub ships Nictiz's definitions) and XML folders (Nictiz's
release as published: only indexed by url, a cheap scan of each file's head, and parsed when a
definition is first asked for). All are read on first use.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

from hub.fhir.validation.corepkg import core_package
from hub.fhir.xml import xml_to_json

_URL_RE = re.compile(rb'<url value="([^"]+)"')
_KINDS = ("StructureDefinition", "ValueSet", "CodeSystem")
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"


class Registry:
    """Canonical url -> conformance resource (as JSON), over JSON and XML sources, loaded lazily."""

    def __init__(
        self,
        json_dirs: Iterable[Path] = (),
        xml_dirs: Iterable[Path] = (),
        *,
        packages: Iterable[Path] = (),
        core: bool = True,
    ) -> None:
        self._json_dirs = [Path(p) for p in json_dirs]
        self._packages = [Path(p) for p in packages]
        self._xml_dirs = [Path(p) for p in xml_dirs]
        self._core = core
        self._parsed: dict[Path, dict[str, Any]] = {}

    # -- indexes ---------------------------------------------------------------------------------
    @cached_property
    def _core_index(self) -> dict[str, dict[str, Any]]:
        if not self._core:
            return {}
        pkg = core_package()
        out: dict[str, dict[str, Any]] = {}
        for key in ("codeSystems", "valueSets", "structureDefinitions"):
            for r in pkg[key]:
                out.setdefault(r["url"], r)
        return out

    @cached_property
    def _json_index(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for d in self._json_dirs:
            for f in sorted(d.rglob("*.json")):
                data = json.loads(f.read_bytes())
                entries = (
                    [e["resource"] for e in data.get("entry", [])] if data.get("resourceType") == "Bundle" else [data]
                )
                for r in entries:
                    if isinstance(r, dict) and r.get("resourceType") in _KINDS and "url" in r:
                        out[r["url"]] = r
        return out

    @cached_property
    def _package_index(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for path in self._packages:
            for r in json.loads(gzip.decompress(path.read_bytes())):
                if isinstance(r, dict) and r.get("resourceType") in _KINDS and "url" in r:
                    out.setdefault(r["url"], r)
        return out

    @cached_property
    def _xml_index(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for d in self._xml_dirs:
            for f in sorted(d.rglob("*.xml")):
                m = _URL_RE.search(f.read_bytes())
                if m:
                    out.setdefault(m.group(1).decode(), f)
        return out

    # -- lookup ----------------------------------------------------------------------------------
    def get(self, url: str) -> dict[str, Any] | None:
        """The conformance resource with this canonical url (version suffix ``|v`` ignored), or None."""
        url = url.split("|", 1)[0]
        r = self._json_index.get(url) or self._package_index.get(url)
        if r is not None:
            return r
        path = self._xml_index.get(url)
        if path is not None:
            if path not in self._parsed:
                self._parsed[path] = xml_to_json(path.read_bytes())
            return self._parsed[path]
        return self._core_index.get(url)

    def hub_urls(self, kind: str = "StructureDefinition") -> list[str]:
        """Urls of the resources of one kind in the JSON (hub) sources."""
        return [u for u, r in self._json_index.items() if r["resourceType"] == kind]

    def urls(self, kind: str = "StructureDefinition") -> list[str]:
        """Urls of every loadable resource of one kind (JSON and XML sources; XML by file name guess)."""
        out = self.hub_urls(kind)
        out += [u for u, r in self._package_index.items() if r["resourceType"] == kind]
        out += [u for u, p in self._xml_index.items() if kind == "StructureDefinition" and "/StructureDefinition/" in u]
        out += [u for u, p in self._xml_index.items() if kind != "StructureDefinition" and p.name.startswith(kind)]
        return out

    def core_type_url(self, type_name: str) -> str:
        """The canonical url of a core type or resource definition."""
        return CORE_SD + type_name
