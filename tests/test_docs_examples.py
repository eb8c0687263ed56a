"""Every Python block of the docs pages runs as pasted, in a fresh interpreter in an empty folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[tuple[str, str]]:
    return [(f"{page.name}:{i}", code) for page in sorted(DOCS.glob("*.md"))
            for i, code in enumerate(BLOCK.findall(page.read_text()))]


@pytest.mark.parametrize("name, code", python_blocks(), ids=[n for n, _ in python_blocks()])
def test_docs_python_block_runs_as_pasted(name, code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name}:\n{done.stderr[-3000:]}"
