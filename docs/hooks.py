"""mkdocs hook: the API reference reads the source as the package ``policyopt`` it installs as.

The folders install as ``policyopt.algos``, ``policyopt.nets``, ... through setup.cfg's ``package_dir``,
which static analysis cannot follow; this hook lays out ``build/api/policyopt/`` as links to them.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "api" / "policyopt"


def on_startup(**_: object) -> None:
    TREE.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("__init__.py", ROOT / "policyopt" / "__init__.py"),
        ("algos", ROOT / "algos"),
        ("nets", ROOT / "nets"),
        ("buffers", ROOT / "buffers"),
        ("vecenvs", ROOT / "vecenvs"),
    ):
        link = TREE / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
