"""The layers of ``hub`` (docs/architecture.md): no module imports from a layer above its own.

Every ``import`` of ``hub`` counts, also one inside a function or under ``TYPE_CHECKING``: a lazy
import is still a dependency. What a layer may import:

- base (``hub.paths``, ``hub.settings``, ``hub.keyfiles``): nothing of the hub;
- fhir: base;  store: fhir;  access and audit: store (and fhir);
- workflows, events and bulk: access, audit, store, fhir (not each other);
- api: all of the above;  the top (``hub.app``, ``hub.cli``, ``hub.ops``, ``hub.demo``, ``hub.profiles``,
  ``hub.schema``): everything.

:data:`EXCEPTIONS` lists the imports that break this, each with the reason; nothing else may.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HUB = Path(__file__).resolve().parents[2] / "hub"

BASE = frozenset({"paths", "settings", "keyfiles"})
LOW = frozenset({"fhir", "store", "access", "audit"})
#: What each layer may import besides itself and the base.
ALLOWED: dict[str, frozenset[str]] = {
    "fhir": frozenset(),
    "store": frozenset({"fhir"}),
    "access": frozenset({"store", "fhir"}),
    "audit": frozenset({"store", "fhir"}),
    "workflows": LOW,
    "events": LOW,
    "bulk": LOW,
    "api": LOW | {"workflows", "events", "bulk"},
}
TOP = frozenset({"app", "cli", "ops", "demo", "profiles", "schema"})

#: (importing module, imported module): why it is allowed. Keep this short; fix rather than add.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("hub.store.migrations.env", "hub.schema"): "Alembic's environment script (loaded by path, never imported) "
    "compares the database with every table of the hub",
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(HUB.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "hub"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
    return {name for name in found if name == "hub" or name.startswith("hub.")}


def _sources() -> list[Path]:
    return sorted(p for p in HUB.rglob("*.py") if "versions" not in p.relative_to(HUB).parts)


def _violations() -> list[str]:
    out = []
    for path in _sources():
        module = _module(path)
        layer = _layer(module)
        if layer in TOP or layer == "hub":
            continue
        allowed = ALLOWED.get(layer, frozenset()) if layer not in BASE else frozenset()
        for target in sorted(_imports(path)):
            to = _layer(target)
            if to == layer or (to in BASE and layer not in BASE) or to in allowed or target == "hub":
                continue
            if any(target == b or target.startswith(b + ".") for (a, b) in EXCEPTIONS if a == module):
                continue
            out.append(f"{module} ({layer}) imports {target} ({to})")
    return out


def test_no_layer_imports_from_a_layer_above() -> None:
    assert _violations() == []


def test_every_package_of_the_hub_has_a_layer() -> None:
    """A new package must be placed (ALLOWED, TOP or BASE) before it can be checked."""
    named = set(ALLOWED) | TOP | BASE | {"hub", "definitions"}
    found = {_layer(_module(p)) for p in _sources()}
    assert found <= named, sorted(found - named)


@pytest.mark.parametrize(
    ("module", "target"),
    [("hub.fhir.x", "hub.store.tables"), ("hub.store.x", "hub.app"), ("hub.access.x", "hub.workflows.check")],
)
def test_the_check_sees_an_inversion(tmp_path: Path, module: str, target: str) -> None:
    """The AST walk finds imports anywhere in a module (here: inside a function)."""
    source = tmp_path / "m.py"
    source.write_text(f"def f():\n    import {target}\n", encoding="utf-8")
    found = _imports(source)
    assert found == {target}
    assert _layer(target) not in ALLOWED[_layer(module)]
