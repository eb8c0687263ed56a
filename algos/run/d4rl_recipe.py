"""D4RL's MuJoCo dataset recipe, regenerated locally on gymnasium v5 (or v4) envs.

D4RL (Fu et al., 2020) trained SAC, kept checkpoints, and rolled out stochastic policies for
1M steps per level: ``random`` (uniform actions), ``medium`` (a checkpoint about a third of the
way from random to expert), ``expert`` (the trained agent), ``medium-replay`` (the training
data up to medium) and ``medium-expert`` (medium then expert). Hong et al. (ICLR 2023) add
``random-{medium,expert}-{ratio}`` mixtures. :func:`make_datasets` does all of it with a
behaviour agent of this library (PPO on the batched native env by default, because it is
fast; SAC as D4RL did), collecting with many env copies at once. Reference scores (random and
expert returns over 100 episodes) go into every file's metadata.

One build writes into an output folder at a time (:class:`policyopt.algos.run.rundir.DirectoryLock`: a second
fails naming the first's PID), and a build starts by removing the partial files a killed one left.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from policyopt import vecenvs
from policyopt.algos.core.base import Algorithm
from policyopt.algos.core.evaluation import evaluate
from policyopt.algos.run.rundir import DirectoryLock, DirectoryLockedError, remove_temporary_files
from policyopt.buffers.dataset import EpisodeRecorder, OfflineDataset, concatenate, mix_datasets, normalized_score
from policyopt.vecenvs import TorchVecEnvWrapper

STANDARD_LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert")
MIXED_LEVEL = re.compile(r"random-(medium|expert)-(0?\.\d+|1(\.0*)?)")
FORMATS = ("d4rl", "minari", "npz")


@dataclass
class DatasetRecipe:
    """What to build: the env, the levels, their sizes, the behaviour agent and the output."""

    env_id: str = "Hopper-v5"
    """MuJoCo env id (a native batched env: Hopper/HalfCheetah/Walker2d/Ant-v5 or -v4)"""
    out_dir: Path = Path("datasets")
    """folder for the dataset files, their JSON cards and the behaviour agent's checkpoints"""
    levels: tuple[str, ...] = STANDARD_LEVELS
    """levels to write: random, medium, expert, medium-replay, medium-expert, and random-{medium,expert}-{ratio}"""
    size: int = 1_000_000
    """transitions per rolled-out level (random, medium, expert; medium-expert is both, mixtures as big as their good part)"""
    behaviour: str = "ppo"
    """behaviour agent: ppo (fast, on the batched env) or sac (as D4RL did)"""
    train_steps: int = 1_000_000
    """env steps to train the behaviour agent for; the final agent is the expert"""
    checkpoint_every: int = 20_000
    """env steps between behaviour checkpoints (the medium policy is one of them)"""
    train_num_envs: int | None = None
    """env copies the behaviour agent trains on (None: 16 for ppo, 1 for sac)"""
    num_envs: int = 64
    """env copies stepped together while collecting"""
    medium_score: float = 100.0 / 3.0
    """the medium checkpoint is the one whose return is nearest this normalized score (0: random, 100: expert)"""
    ref_episodes: int = 100
    """episodes behind each reference score (random and expert policies)"""
    medium_candidates: int = 3
    """checkpoints (nearest by training return) evaluated over 20 episodes to pick medium"""
    formats: tuple[str, ...] = ("d4rl",)
    """file formats to write: d4rl (hdf5), minari (a dataset directory), npz"""
    seed: int = 0
    """seeds the behaviour agent, every collection env and every policy sample"""
    device: str = "cpu"
    """torch device of the envs and networks"""
    progress: bool = True
    """progress bars"""

    def __post_init__(self) -> None:
        self.levels, self.formats = tuple(self.levels), tuple(self.formats)
        unknown = [lv for lv in self.levels if lv not in STANDARD_LEVELS and not MIXED_LEVEL.fullmatch(lv)]
        if unknown:
            raise ValueError(
                f"unknown level(s) {unknown}; levels are {', '.join(STANDARD_LEVELS)} and "
                "random-medium-<ratio> / random-expert-<ratio> with a ratio in (0, 1], e.g. random-expert-0.05"
            )
        if bad := [f for f in self.formats if f not in FORMATS]:
            raise ValueError(f"unknown format(s) {bad}; available: {', '.join(FORMATS)}")
        if self.behaviour not in ("ppo", "sac"):
            raise ValueError(f"behaviour must be 'ppo' or 'sac', got {self.behaviour!r}")
        for name in ("size", "train_steps", "checkpoint_every", "num_envs", "ref_episodes", "medium_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.env_id not in vecenvs.registered_ids():
            raise ValueError(
                f"{self.env_id!r} has no native batched env; the recipe runs on {', '.join(vecenvs.registered_ids())}"
            )

    @property
    def env_name(self) -> str:
        """``hopper-v5`` style: the files are ``<env>-<level>-<version>``."""
        name, version = self.env_id.rsplit("-", 1)
        return f"{name.lower()}-{{level}}-{version}"

    def minari_id(self, level: str) -> str:
        """``policyopt/hopper/medium-replay-v5``: Minari's id form (no dots, so a ratio's ``.`` is ``_``)."""
        name, version = self.env_id.rsplit("-", 1)
        return f"policyopt/{name.lower()}/{level.replace('.', '_')}-{version}"


class RecordSteps(TorchVecEnvWrapper):
    """Records every step of the env it wraps (innermost, so raw observations and rewards)."""

    def __init__(self, env: Any, recorder: EpisodeRecorder) -> None:
        super().__init__(env)
        self.recorder = recorder
        self._last_obs: torch.Tensor | None = None

    def reset(self, **kwargs: Any) -> tuple[torch.Tensor, dict]:
        obs, info = self.env.reset(**kwargs)
        self._last_obs = obs
        return obs, info

    def step(self, actions: torch.Tensor) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        actions = torch.as_tensor(actions, device=reward.device, dtype=torch.float32)
        self.recorder.add(self._last_obs, actions, reward, terminated, truncated, info["final_obs"])
        self._last_obs = obs
        return obs, reward, terminated, truncated, info


def uniform_actions(env: Any, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """D4RL's random policy: actions uniform in the action box, from a seeded generator."""
    space = env.single_action_space
    low = torch.as_tensor(space.low, device=env.device)
    span = torch.as_tensor(space.high, device=env.device) - low
    gen = torch.Generator(device=env.device).manual_seed(seed)
    return lambda obs: low + span * torch.rand((obs.shape[0], low.shape[0]), generator=gen, device=env.device)


@torch.no_grad()
def collect(
    env: Any,
    act: Callable[[torch.Tensor], torch.Tensor],
    size: int,
    progress: bool = False,
    desc: str = "collect",
    **dataset_kwargs: Any,
) -> OfflineDataset:
    """Roll ``act`` out on every copy of ``env`` until ``size`` transitions of whole episodes are
    recorded; the dataset holds exactly ``size`` (its last episode may end mid-way, as D4RL's)."""
    recorder = EpisodeRecorder()
    obs, _ = env.reset()
    length = torch.zeros(env.num_envs, dtype=torch.int64, device=obs.device)
    complete = torch.zeros((), dtype=torch.int64, device=obs.device)
    bar = tqdm(total=size, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
    done_so_far = 0
    while done_so_far < size:
        for _ in range(50):  # one host sync per 50 vector steps
            action = act(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            recorder.add(obs, action, reward, terminated, truncated, info["final_obs"])
            length += 1
            done = terminated | truncated
            complete += torch.where(done, length, 0).sum()
            length = torch.where(done, 0, length)
            obs = next_obs
        now = int(complete)
        bar.update(min(now, size) - min(done_so_far, size))
        done_so_far = now
    bar.close()
    return recorder.dataset(max_transitions=size, **dataset_kwargs)


def _behaviour_agent(recipe: DatasetRecipe, env: Any) -> Algorithm:
    from policyopt.algos.onpolicy.ppo import PPO, PPOConfig
    from policyopt.algos.offpolicy.sac import SAC, SACConfig

    if recipe.behaviour == "ppo":
        # CleanRL's MuJoCo PPO on 16 x 128 steps (the same 2048-sample batch): Hopper-v5 reaches
        # about 3,600 (deterministic) within 300-400k steps here
        return PPO(env, dataclasses.replace(PPOConfig.preset("mujoco"), num_steps=128, seed=recipe.seed))
    # D4RL's choice; checkpoints without the replay buffer (the recorder keeps the data)
    return SAC(env, dataclasses.replace(SACConfig.preset("mujoco"), save_buffer=False, seed=recipe.seed))


def _mean_return(recipe: DatasetRecipe, act: Callable, episodes: int, seed: int) -> float:
    env = vecenvs.make(recipe.env_id, num_envs=episodes, device=recipe.device, seed=seed)
    return evaluate(act, env)["return_mean"]


def remove_partial_files(out: Path) -> list[Path]:
    """Delete the temporary files a killed build left in its output folder ``out``; returns them. Call it
    holding the folder's lock (then no live writer owns them). Only the names this recipe's writers use
    (each writes a temporary file and renames it into place) match, so nothing else in the folder goes."""
    places = [(out, ("*.hdf5.tmp", "*.npz.tmp.npz", "*.json.tmp"))]  # save_d4rl, save_npz, the JSON cards
    places += [(d, ("main_data.hdf5.tmp", "metadata.json.tmp")) for d in sorted(out.glob("minari/**/data"))]  # save_minari
    places += [(d, (".*.pt.*.tmp",)) for d in sorted(out.glob("behaviour/*"))]  # the behaviour agent's atomic_save
    return sorted(f for d, patterns in places for f in remove_temporary_files(d, patterns))


def make_datasets(recipe: DatasetRecipe, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Build every level of ``recipe``; returns the written paths by level (the D4RL file where asked, else the first format).

    Holds ``out_dir``'s lock for the whole build: another build into the same folder raises
    :class:`policyopt.algos.run.rundir.DirectoryLockedError` naming this one's PID, rather than interleaving its files."""
    out = Path(recipe.out_dir)
    with DirectoryLock(out, "dataset build"):
        for leftover in remove_partial_files(out):  # holding the lock: what a killed build left half-written
            log(f"removed {leftover}, a partial file of an interrupted build")
        return _make_datasets(recipe, out, log)


def _make_datasets(recipe: DatasetRecipe, out: Path, log: Callable[[str], None]) -> dict[str, Path]:
    t_start = time.perf_counter()
    needs_agent = any(lv != "random" for lv in recipe.levels)
    seeds = {
        "train": recipe.seed,
        "random": recipe.seed + 1,
        "medium": recipe.seed + 2,
        "expert": recipe.seed + 3,
        "ref_random": recipe.seed + 100,
        "ref_expert": recipe.seed + 101,
        "medium_eval": recipe.seed + 102,
    }
    timing: dict[str, float] = {}
    info: dict[str, Any] = {
        "recipe": "d4rl",
        "env_id": recipe.env_id,
        "seeds": seeds,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(recipe).items()},
        "command": " ".join(sys.argv),
    }

    # 1. the behaviour agent, its checkpoints, and every training transition (medium-replay)
    recorder = EpisodeRecorder()
    checkpoints: list[dict[str, Any]] = []
    agent = None
    if needs_agent:
        t0 = time.perf_counter()
        train_envs = recipe.train_num_envs or (16 if recipe.behaviour == "ppo" else 1)
        env = RecordSteps(vecenvs.make(recipe.env_id, num_envs=train_envs, device=recipe.device, seed=seeds["train"]), recorder)
        agent = _behaviour_agent(recipe, env)
        ckpt_dir = out / "behaviour" / f"{recipe.env_id}-{recipe.behaviour}-seed{recipe.seed}"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        recent = [float("nan")]

        def checkpoint(a: Algorithm, record: dict[str, float]) -> None:
            if "charts/episodic_return" in record:
                recent[0] = record["charts/episodic_return"]
            if a.global_step // recipe.checkpoint_every > len(checkpoints):
                path = a.save(ckpt_dir / f"step{a.global_step:09d}.pt")
                checkpoints.append({"step": a.global_step, "path": path, "train_return": recent[0], "rows": recorder.num_rows})

        log(f"training the {recipe.behaviour.upper()} behaviour agent on {recipe.env_id} for {recipe.train_steps:,} steps")
        agent.learn(recipe.train_steps, callback=checkpoint, progress=recipe.progress, log_every=recipe.checkpoint_every // 4)
        final = agent.save(ckpt_dir / "final.pt")
        checkpoints.append({"step": agent.global_step, "path": final, "train_return": recent[0], "rows": recorder.num_rows})
        timing["train_seconds"] = time.perf_counter() - t0

    # 2. reference scores: uniform random actions and the expert, each over ref_episodes
    t0 = time.perf_counter()
    ref_env = vecenvs.make(recipe.env_id, num_envs=1, device=recipe.device)
    ref_min = _mean_return(recipe, uniform_actions(ref_env, seeds["ref_random"]), recipe.ref_episodes, seeds["ref_random"])
    ref_max = None
    if agent is not None:
        torch.manual_seed(seeds["ref_expert"])
        ref_max = _mean_return(recipe, lambda o: agent.act(o), recipe.ref_episodes, seeds["ref_expert"])
    refs = {"ref_min_score": ref_min, "ref_max_score": ref_max}
    log(
        f"reference returns over {recipe.ref_episodes} episodes: random {ref_min:.1f}"
        + (f", expert {ref_max:.1f}" if ref_max is not None else "")
    )
    timing["reference_seconds"] = time.perf_counter() - t0

    def normalized(r: float) -> float | None:
        return None if ref_max is None or ref_max == ref_min else normalized_score(r, ref_min, ref_max)

    # 3. medium: among the checkpoints nearest the target by training return, the nearest over 20 episodes
    medium = None
    if agent is not None and any("medium" in lv for lv in recipe.levels):
        target = ref_min + recipe.medium_score / 100.0 * (ref_max - ref_min)
        scored = [c for c in checkpoints[:-1] if not math.isnan(c["train_return"])] or checkpoints[:-1] or checkpoints
        candidates = sorted(scored, key=lambda c: abs(c["train_return"] - target) if not math.isnan(c["train_return"]) else 0)
        best = None
        for c in candidates[: recipe.medium_candidates]:
            cand = type(agent).load(c["path"], device=recipe.device)
            torch.manual_seed(seeds["medium_eval"])
            c["eval_return"] = _mean_return(recipe, lambda o: cand.act(o), 20, seeds["medium_eval"])
            if best is None or abs(c["eval_return"] - target) < abs(best["eval_return"] - target):
                best = c
        medium = best
        log(
            f"medium: checkpoint at step {medium['step']:,} (return {medium['eval_return']:.1f} over 20 episodes; "
            f"target {target:.1f} = normalized {recipe.medium_score:.1f})"
        )

    # 4. roll out the levels, 5. derive the others, 6. write them
    written: dict[str, Path] = {}
    made: dict[str, OfflineDataset] = {}
    env_meta = {"env_id": recipe.env_id, **refs}

    def rollout(level: str) -> OfflineDataset:
        if level in made:
            return made[level]
        t0 = time.perf_counter()
        env = vecenvs.make(recipe.env_id, num_envs=recipe.num_envs, device=recipe.device, seed=seeds[level])
        torch.manual_seed(seeds[level])
        if level == "random":
            act, behaviour = uniform_actions(env, seeds[level]), {"policy": "uniform random actions"}
        else:
            ckpt = medium if level == "medium" else checkpoints[-1]
            policy = type(agent).load(ckpt["path"], device=recipe.device)
            act, behaviour = (
                (lambda o: policy.act(o)),
                {
                    "policy": f"{recipe.behaviour} checkpoint (stochastic)",
                    "checkpoint_step": ckpt["step"],
                    "checkpoint": str(ckpt["path"]),
                },
            )
        made[level] = collect(
            env,
            act,
            recipe.size,
            progress=recipe.progress,
            desc=level,
            metadata={**env_meta, "level": level, "behaviour": behaviour},
        )
        timing[f"{level}_seconds"] = time.perf_counter() - t0
        return made[level]

    for level in recipe.levels:
        t0 = time.perf_counter()
        if level in ("random", "medium", "expert"):
            data = rollout(level)
        elif level == "medium-replay":
            data = recorder.dataset(
                rows=medium["rows"],
                metadata={
                    **env_meta,
                    "level": level,
                    "behaviour": {
                        "policy": f"{recipe.behaviour} training data up to the medium checkpoint",
                        "checkpoint_step": medium["step"],
                    },
                },
            )
        elif level == "medium-expert":
            data = concatenate(
                [rollout("medium"), rollout("expert")],
                metadata={
                    **env_meta,
                    "level": level,
                    "behaviour": {"policy": "medium then expert", "checkpoint_steps": [medium["step"], checkpoints[-1]["step"]]},
                },
            )
        else:
            good_level, ratio = MIXED_LEVEL.fullmatch(level).group(1), float(MIXED_LEVEL.fullmatch(level).group(2))
            data = mix_datasets(rollout(good_level), rollout("random"), ratio, seed=recipe.seed)
            data.metadata.update(level=level)
        data.metadata["dataset_id"] = recipe.minari_id(level)
        paths = _write(data, out, recipe.env_name.format(level=level), recipe.formats)
        returns = data.episode_returns
        card = {
            **info,
            "level": level,
            "transitions": data.num_transitions,
            "episodes": data.num_episodes,
            "terminals": int(data.terminals.sum()),
            "timeouts": int(data.timeouts.sum()),
            "behaviour": data.metadata.get("behaviour"),
            "mix": data.metadata.get("mix"),
            "episode_return_mean": float(returns.mean()),
            "episode_return_max": float(returns.max()),
            "normalized_episode_return_mean": normalized(float(returns.mean())),
            **refs,
            "files": {k: str(p) for k, p in paths.items()},
            "seconds": {"this_level": time.perf_counter() - t0, **timing, "total_so_far": time.perf_counter() - t_start},
        }
        if medium is not None:
            card["medium_checkpoint"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in medium.items()}
        card_path = out / f"{recipe.env_name.format(level=level)}.json"
        tmp = card_path.with_name(card_path.name + ".tmp")  # atomic, as the data files: a kill leaves no half card
        tmp.write_text(json.dumps(card, indent=1, default=str))
        tmp.replace(card_path)
        written[level] = paths.get("d4rl", next(iter(paths.values())))
        log(
            f"{level}: {data.num_transitions:,} transitions, {data.num_episodes:,} episodes, mean return "
            f"{card['episode_return_mean']:.1f} -> {written[level]}"
        )
    return written


def _write(data: OfflineDataset, out: Path, stem: str, formats: tuple[str, ...]) -> dict[str, Path]:
    paths = {}
    if "d4rl" in formats:
        paths["d4rl"] = data.save_d4rl(out / f"{stem}.hdf5")
    if "npz" in formats:
        paths["npz"] = data.save_npz(out / f"{stem}.npz")
    if "minari" in formats:
        dataset_id = data.metadata["dataset_id"]
        paths["minari"] = data.save_minari(out / "minari" / dataset_id, dataset_id=dataset_id)
    return paths


def cli(argv: list[str] | None = None) -> dict:
    """``make-dataset``'s command line: build the recipe's datasets; another build on --out-dir exits naming its PID."""
    import tyro

    recipe = tyro.cli(DatasetRecipe, args=argv, description="Build D4RL-recipe datasets locally")
    torch.set_num_threads(1)  # small networks and batched envs run fastest on one thread
    try:
        return make_datasets(recipe)
    except DirectoryLockedError as e:  # another build owns --out-dir: say so without a traceback
        raise SystemExit(f"make_dataset.py: {e}") from None
