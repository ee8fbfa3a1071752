"""The repository stands alone: no code or test reads the reference material beside the clone."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Maintainer tools that turn the reference material into package data are the only readers.
ALLOWED = {REPO / "scripts"}
PATTERN = re.compile(r"""["']shared["']\s*/\s*["']reference|\.\./shared|/shared/reference""")


def _python_files() -> list[Path]:
    out = []
    for top in ("hub", "tests", "bench", "adapters", "apps", "scripts", "examples"):
        root = REPO / top
        if root.is_dir():
            out += [
                p
                for p in root.rglob("*.py")
                if not any(a in p.parents for a in ALLOWED) and p != Path(__file__).resolve()
            ]
    return out


def test_the_makefile_and_shell_scripts_name_no_reference_material() -> None:
    """``make`` targets take such a folder as a variable; they never reach beside the clone."""
    files = [REPO / "Makefile", *sorted((REPO / ".ci").glob("*")), *sorted((REPO / "scripts").glob("*.sh"))]
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in files
        if p.is_file()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if PATTERN.search(line) and "test ! -e" not in line and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_nothing_outside_the_sync_scripts_reads_the_reference_material() -> None:
    files = _python_files()
    assert len(files) > 100
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if PATTERN.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_the_package_data_the_hub_reads_is_in_the_package() -> None:
    from hub.paths import definitions_dir, nictiz_package, profiles_dir

    assert definitions_dir().parent == REPO / "hub"
    assert nictiz_package().is_file() and (definitions_dir() / "r4" / "search-parameters.json.gz").is_file()
    assert len(list(profiles_dir().glob("StructureDefinition-*.json"))) >= 30
