"""The README's and the docs pages' Python blocks run as pasted, in a fresh interpreter in an empty folder; the site builds strict;
CI runs the README's test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


# The pages whose every block runs as pasted. The blocks that moved from the README into the other pages
# train for minutes or read datasets that must be built first; they join this list as they are made runnable.
RUNNABLE = ("index.md", "checkpoints.md", "add-an-algorithm.md")


def python_blocks() -> list[tuple[str, str]]:
    pages = [DOCS.parent / "README.md", *(DOCS / page for page in RUNNABLE)]
    return [(f"{page.name}:{i}", code) for page in pages for i, code in enumerate(BLOCK.findall(page.read_text()))]


@pytest.mark.slow
@pytest.mark.parametrize("name, code", python_blocks(), ids=[n for n, _ in python_blocks()])
def test_docs_python_block_runs_as_pasted(name, code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name}:\n{done.stderr[-3000:]}"


def test_ci_runs_exactly_the_readmes_test_command():
    root = DOCS.parent
    command = (root / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (root / "README.md").read_text()
    assert "ruff check ." in command and "ruff format --check ." in command and "python -m pytest -q" in command
    assert f"```bash\n{command}\n```" in readme


def test_the_docs_site_builds_strict(tmp_path):
    """mkdocs build --strict: every page, link and API entry resolves (no plugin fetches anything)."""
    root = DOCS.parent
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "doc-heading" in (tmp_path / "site" / "api" / "index.html").read_text()  # the API reference was generated
