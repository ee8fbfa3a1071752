"""Print the README tour as one bash script: every ```sh block between the tour markers, in order.

    python scripts/readme_tour.py README.md > tour.sh && HUB_PORT=8080 bash tour.sh

The tour is documentation *and* a test (tests/api/test_readme_tour.py, and the stand-alone check in
``.ci/run``): each step checks its own effect (``jq -e``, ``grep -q``, ``test``), and the script stops
at the first step that fails, naming it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

START, END = "<!-- tour:start -->", "<!-- tour:end -->"
PROLOGUE = """set -euo pipefail
trap 'echo "README tour failed at line $LINENO: $BASH_COMMAND" >&2' ERR
"""


def tour_script(readme: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"the README has no {START} ... {END} section")
    section = readme.split(START, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    if not blocks:
        raise ValueError("the README tour has no ```sh blocks")
    return PROLOGUE + "\n".join(blocks)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "README.md"
    sys.stdout.write(tour_script(path.read_text(encoding="utf-8")))
