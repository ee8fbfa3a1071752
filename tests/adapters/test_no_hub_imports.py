"""Adapters are clients of the hub's HTTP API: nothing under adapters/ imports the hub package."""

from __future__ import annotations

import ast
from pathlib import Path

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"


def hub_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "hub" or a.name.startswith("hub.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hub" or node.module.startswith("hub."):
                found.append(node.module)
    return found


def test_scanner_finds_hub_imports() -> None:
    assert hub_imports("import hub.app\nfrom hub.access import policy\nimport hubspot\n") == ["hub.app", "hub.access"]


def test_no_adapter_module_imports_hub() -> None:
    files = sorted(ADAPTERS.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(p.relative_to(ADAPTERS)): hub_imports(p.read_text()) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}
