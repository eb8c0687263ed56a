"""Evaluate a checkpoint: mean deterministic return over N episodes.

    python scripts/evaluate.py runs/ppo/CartPole-v1/seed0/checkpoint.pt --episodes 20
    python scripts/evaluate.py runs/ppo/CartPole-v1/seed0 --episodes 20   # the run dir: its checkpoint.pt

Protocol: ``--episodes N`` copies of the env are made with ``vecenvs.make(..., seed=SEED)``
and reset with ``SEED``; each copy runs exactly one episode to its end (termination or
truncation) with the policy's deterministic action (the mean, or the most likely action),
and observation normalisation frozen at the checkpoint's statistics. The result is the
mean and std of the N undiscounted returns; the same checkpoint, N and seed give the same
numbers. Generative offline agents act as their config says (``eval_stochastic``: samples of the
policy, as the papers evaluate), and ``--act-candidates N`` evaluates them with candidate
resampling (N actions, one drawn by softmax(Q / temperature)), which the output records. The env id defaults to the ``env_id`` in the run's config.json beside the
checkpoint. ``--stochastic`` acts with samples of the policy instead (the training episodes' policy). Prints one JSON object: env_id, algo, episodes, seed, return_mean, return_std,
length_mean, each episode's return by env copy (``returns``), and with ``--capture-video`` the mp4 of copy 0's episode (``video``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import tyro

from policyopt import vecenvs
from policyopt.algos import ALGORITHMS
from policyopt.algos.core.checkpoint import load_checkpoint
from policyopt.nets import UntrustedClassError

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class Args:
    checkpoint: tyro.conf.Positional[Path]
    """a checkpoint.pt, or a run directory holding one"""
    env_id: str | None = None
    """default: the env_id in config.json beside the checkpoint"""
    episodes: int = 10
    """episodes to average (one per env copy)"""
    device: str = "cpu"
    """torch device of the agent and the env (cpu, cuda, ...)"""
    seed: int = 12345
    """seed of the evaluation env"""
    backend: str | None = None
    """env backend (None: the default for the device)"""
    act_candidates: int | None = None
    """generative offline policies: candidate actions per observation, one kept by softmax(Q / act-temperature) (None: the checkpoint's setting)"""
    act_temperature: float | None = None
    """with act-candidates: the softmax temperature (None: the checkpoint's setting)"""
    stochastic: bool = False
    """act with samples of the policy, not its mean (or most likely action); generative offline agents sample anyway"""
    capture_video: bool = False
    """record the first evaluated episode (env copy 0) to <video-dir>/eval_seed<SEED>.mp4 (pip install -e ".[video]")"""
    video_dir: Path | None = None
    """with --capture-video: where the mp4 goes (default: videos/ beside the checkpoint)"""
    trust: tuple[str, ...] = ()
    """module prefixes whose policy classes the checkpoint may rebuild (e.g. mylab.policies); by default only policyopt's own"""


def checkpoint_path(path: Path) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` for a run directory; exits when there is none."""
    if path.is_dir():
        if not (path / CHECKPOINT_FILE).is_file():
            raise SystemExit(f"no {CHECKPOINT_FILE} in run directory {path}; expected {path / CHECKPOINT_FILE}")
        return path / CHECKPOINT_FILE
    if not path.is_file():
        raise SystemExit(f"checkpoint {path} does not exist; expected a checkpoint.pt or a run directory holding one")
    return path


def validate(args: Args) -> None:
    """Reject nonsensical arguments before anything is loaded."""
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be a positive number of episodes, got {args.episodes}")
    if args.seed < 0:
        raise SystemExit(f"--seed must be a non-negative integer, got {args.seed}")
    if args.act_candidates is not None and args.act_candidates < 1:
        raise SystemExit(f"--act-candidates must be a positive number of candidate actions, got {args.act_candidates}")
    if args.act_temperature is not None and args.act_temperature < 0:
        raise SystemExit(f"--act-temperature must be >= 0, got {args.act_temperature}")
    if args.video_dir is not None and not args.capture_video:
        raise SystemExit("--video-dir says where --capture-video writes its mp4; pass --capture-video too")
    if args.env_id is not None and not args.env_id.strip():
        raise SystemExit("--env-id is empty; expected an env id such as CartPole-v1")
    try:
        vecenvs.check_device(args.device)
    except ValueError as e:
        raise SystemExit(f"--device: {e}") from None


def set_protocol(agent: Any, args: Args) -> dict[str, Any]:
    """Apply ``--act-candidates`` / ``--act-temperature`` to a generative offline agent; returns the
    candidate-resampling settings it evaluates with (empty for agents without them)."""
    names = ("act_candidates", "act_temperature")
    asked = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if not all(hasattr(agent.config, name) for name in names):
        if asked:
            raise SystemExit(
                f"--act-candidates and --act-temperature apply to the generative offline algorithms "
                f"(DiffusionQL, EDP, ConsistencyAC, FQL); this checkpoint holds a {type(agent).__name__}"
            )
        return {}
    if asked.get("act_candidates", 1) > 1 and getattr(agent, "critic_target", None) is None:
        raise SystemExit(f"--act-candidates ranks candidates with a critic, and this {type(agent).__name__} checkpoint has none")
    for name, value in asked.items():
        setattr(agent.config, name, value)
    return {name: getattr(agent.config, name) for name in names}


def env_id_from_config(checkpoint: Path) -> str:
    """The ``env_id`` of the run's config.json beside ``checkpoint``."""
    config_file = checkpoint.parent / "config.json"
    if not config_file.is_file():
        raise SystemExit(f"--env-id is needed: no config.json beside {checkpoint}")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise SystemExit(f"{config_file} is not valid JSON ({e}); pass --env-id") from None
    env_id = config.get("env_id") if isinstance(config, dict) else None
    if not isinstance(env_id, str) or not env_id:
        raise SystemExit(f"{config_file} has no \"env_id\" string; pass --env-id")
    return env_id


def capture_video_check(env_id: str, args: Args) -> dict[str, Any]:
    """Exit now, before the checkpoint is loaded, when ``env_id`` cannot be rendered or encoded here;
    the extra ``vecenvs.make`` kwargs the rendered env needs."""
    from policyopt.algos.run.video import check_capture
    from policyopt.vecenvs.render import RenderingUnavailable

    try:
        return check_capture(env_id, device=args.device, backend=args.backend)
    except (RenderingUnavailable, ValueError) as e:
        raise SystemExit(f"--capture-video: {e}") from None


def load_agent(checkpoint: Path, device: str = "cpu", trust: Sequence[str] = ()) -> Any:
    """The agent of any algorithm's checkpoint; exits naming the file when it holds none, or when it asks
    for a policy class outside policyopt that ``trust`` (module prefixes) does not allow."""
    try:
        algo = load_checkpoint(checkpoint)["algo"]
    except ValueError as e:
        raise SystemExit(str(e)) from None
    by_name = {cls.__name__: cls for cls in ALGORITHMS.values()}
    if algo not in by_name:
        raise SystemExit(f"{checkpoint} holds a {algo} checkpoint; this script evaluates {', '.join(by_name)}")
    try:
        return by_name[algo].load(checkpoint, device=device, trusted_classes=tuple(trust))
    except UntrustedClassError as e:
        raise SystemExit(f"{e}; from this script: --trust MODULE_PREFIX") from None


def main(args: Args) -> dict[str, Any]:
    validate(args)
    checkpoint = checkpoint_path(args.checkpoint)
    env_id = args.env_id or env_id_from_config(checkpoint)
    env_kwargs = capture_video_check(env_id, args) if args.capture_video else {}
    agent = load_agent(checkpoint, args.device, args.trust)
    algo = type(agent).__name__
    protocol = set_protocol(agent, args)
    try:
        env = vecenvs.make(env_id, num_envs=args.episodes, device=args.device, seed=args.seed, backend=args.backend, **env_kwargs)
    except ValueError as e:
        raise SystemExit(f"cannot make the evaluation env: {e}") from None
    try:
        agent.check_env(env)
    except ValueError as e:
        source = "--env-id" if args.env_id else f"the env_id of {checkpoint.parent / 'config.json'}"
        raise SystemExit(f"{checkpoint} cannot be evaluated on {env_id} ({source}): {e}") from None
    if args.capture_video:
        from policyopt.algos.run.video import RecordEvalVideo

        env = RecordEvalVideo(env, args.video_dir or checkpoint.parent / "videos", name=lambda _: f"eval_seed{args.seed}")
    result = {
        "env_id": env_id,
        "algo": algo,
        "episodes": args.episodes,
        "seed": args.seed,
        **protocol,
        **({"stochastic": True} if args.stochastic else {}),
        **agent.evaluate(env, seed=args.seed, deterministic=False if args.stochastic else None),
    }
    if args.capture_video:
        result["video"] = str(env.videos[0])
    print(json.dumps(result))
    return result


def cli(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return main(tyro.cli(Args, args=argv, description=__doc__))
