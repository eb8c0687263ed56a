"""The layout: one installed name (the wheel holds only ``policyopt`` and imports from a folder with its
own ``algos/`` and ``nets/``), the import rules between the folders, and setup.cfg listing every package."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"algos": "policyopt.algos", "nets": "policyopt.nets", "buffers": "policyopt.buffers", "vecenvs": "policyopt.vecenvs"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}


def package_of(path: Path) -> str:
    return ".".join(["policyopt", *path.relative_to(ROOT).with_suffix("").parts]).removesuffix(".__init__")


@pytest.mark.parametrize("folder", ["nets", "buffers", "vecenvs"])
def test_nets_buffers_and_vecenvs_import_none_of_the_others(folder):
    others = [FOLDERS[f] for f in FOLDERS if f != folder] + ["scripts"]
    bare = set(FOLDERS) | {"scripts"}  # the names before the namespace must not come back either
    for path in (ROOT / folder).rglob("*.py"):
        bad = {
            m for m in imported_modules(path) if m.split(".")[0] in bare or any(m == o or m.startswith(o + ".") for o in others)
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_inside_algos_imports_run_down():
    """core imports no family and not run; no family imports run; nothing imports scripts."""
    families = ("onpolicy", "offpolicy", "offline")
    for path in (ROOT / "algos").rglob("*.py"):
        part = path.relative_to(ROOT / "algos").parts[0]
        mods = imported_modules(path)
        assert not any(m.split(".")[0] in (*FOLDERS, "scripts") for m in mods), f"{path}: a bare import name"
        if part == "core":
            assert not any(m.startswith(f"policyopt.algos.{f}") for m in mods for f in (*families, "run")), path
        if part in families:
            assert not any(m.startswith("policyopt.algos.run") for m in mods), path


def test_setup_cfg_lists_every_package():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {"policyopt"} | {package_of(p.parent / "__init__.py") for f in FOLDERS for p in (ROOT / f).rglob("__init__.py")}
    assert listed == found


@pytest.mark.slow
def test_the_wheel_installs_only_policyopt_and_imports_beside_a_users_own_algos_and_nets(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("policyopt-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"policyopt"}

    # a fresh venv with the wheel installed; torch and the other dependencies come from this one's site-packages
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "dependencies.pth").write_text(
        "\n".join(deps) + "\n"
    )  # a plain path line: the editable install's finder stays out

    user = tmp_path / "research_repo"  # a user's repository with its own algos/ and nets/ folders
    for name in ("algos", "nets"):
        (user / name).mkdir(parents=True)
        (user / name / "__init__.py").write_text("raise ImportError('the user package, not policyopt')\n")
    code = (
        "import policyopt, sys; from policyopt import PPO, PPOConfig, make; from policyopt.nets import CriticEnsemble; "
        "env = make('CartPole-v1', num_envs=2, seed=0); PPO(env, PPOConfig(num_steps=8, num_minibatches=2)).learn(16, progress=False); "
        "assert 'site-packages' in policyopt.__file__, policyopt.__file__; assert 'algos' not in sys.modules; print('ok')"
    )
    done = subprocess.run([str(python), "-c", code], cwd=user, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_scripts_are_thin_and_import_no_other_script():
    names = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    for path in (ROOT / "scripts").glob("*.py"):
        lines = len(path.read_text().splitlines())
        benchmark = path.stem.startswith("bench_") or path.stem == "gpu_check"  # gpu_check: the GPU-sized benchmarks
        assert benchmark or lines <= 150, f"{path.name}: {lines} lines; its logic belongs in the package"
        assert not {m.split(".")[0] for m in imported_modules(path)} & names, f"{path.name} imports another script"
        assert "sys.path" not in path.read_text(), f"{path.name} edits sys.path"


def test_the_policyopt_command_trains_and_names_what_it_knows(tmp_path, capsys):
    from policyopt.cli import main

    agent = main(
        [
            "train",
            "ppo",
            "--env-id",
            "CartPole-v1",
            "--num-envs",
            "2",
            "--total-steps",
            "32",
            "--eval-every",
            "0",
            "--no-progress",
            "--algo.num-steps",
            "16",
            "--algo.num-minibatches",
            "2",
            "--run-dir",
            str(tmp_path / "r"),
        ]
    )
    assert agent.global_step == 32 and (tmp_path / "r" / "checkpoint.pt").is_file()
    result = main(["evaluate", str(tmp_path / "r"), "--episodes", "2"])
    assert result["episodes"] == 2
    with pytest.raises(SystemExit, match="expected an algorithm, one of ppo, spo"):
        main(["train", "ppx"])
    with pytest.raises(SystemExit, match="unknown command 'trian'; expected train or one of evaluate"):
        main(["trian"])
    with pytest.raises(SystemExit, match="expected a benchmark, one of .*learner"):
        main(["bench", "lerner"])
    main(["--help"])
    assert "policyopt train ALGO" in capsys.readouterr().out


def test_no_algorithm_sits_more_than_three_levels_below_algorithm():
    """Algorithm, the family, the algorithm, and at most one level for a variant whose config inherits too."""
    from policyopt.algos import ALGORITHMS, Algorithm

    for name, cls in ALGORITHMS.items():
        chain = [k for k in cls.__mro__ if isinstance(k, type) and issubclass(k, Algorithm) and k is not Algorithm]
        assert len(chain) <= 3, f"{name}: {' < '.join(k.__name__ for k in chain)}"
