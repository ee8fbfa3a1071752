"""The apps are clients of the hub's public HTTP API: nothing under apps/ may import the hub package."""

from __future__ import annotations

import ast
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "apps"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_apps_never_import_hub() -> None:
    files = sorted(APPS.rglob("*.py"))
    assert len(files) >= 10
    offenders = {
        str(f.relative_to(APPS)): name
        for f in files
        for name in _imports(f)
        if name == "hub" or name.startswith("hub.")
    }
    assert offenders == {}


def test_the_scan_would_see_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from hub.access import policy\nimport hub\n")
    assert _imports(sample) == ["hub.access", "hub"]


def test_templates_have_no_inline_script_or_style() -> None:
    """The CSP forbids inline script and style; the templates must not need them."""
    templates = sorted(APPS.rglob("templates/*.html"))
    assert len(templates) >= 15
    for path in templates:
        html = path.read_text()
        for bad in ("<script>", " style=", "<style", "javascript:", " onclick=", " onload=", " onsubmit="):
            assert bad not in html, f"{path.name} contains {bad!r}"
        for tag in html.split("<script")[1:]:
            assert " src=" in tag.split(">", 1)[0], f"{path.name} has an inline script"
