"""What the benchmark scripts (``scripts/bench_*.py``) share: Markdown tables, progress lines, the
machine's load, short error text, and synthetic D4RL-shaped data."""

from __future__ import annotations

import os
import time

import numpy as np


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A titled Markdown table on stdout."""
    print()
    print(title)
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(flush=True)


def load() -> str:
    """The machine's 1-minute load average, for the record: other jobs change timings."""
    return f"load average {os.getloadavg()[0]:.2f}"


def progress(msg: str) -> None:
    """A timestamped progress line, flushed at once."""
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def short_error(e: BaseException) -> str:
    """An exception as one short table-safe line."""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:160]}".replace("|", "/")


def synthetic(n: int, episode_len: int, obs_dim: int = 17, act_dim: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """D4RL-shaped arrays: episodes of random lengths up to ``episode_len``, some terminated, some timed out."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    ends = np.cumsum(rng.integers(episode_len // 4, episode_len + 1, size=n // (episode_len // 4) + 1))
    ends = ends[ends < n] - 1
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    kind = rng.random(len(ends)) < 0.5
    terminals[ends[kind]], timeouts[ends[~kind]] = True, True
    return {
        "observations": obs,
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
        "next_observations": np.roll(obs, -1, 0),
    }
