"""The offline family: no training env, one iteration is one gradient update on a batch from an
:class:`buffers.OfflineDataset`, drawn by an index sampler (uniform, or Hong et al.'s RW / AW /
top-k trajectory reweighting, chosen by ``config.weighting``). The loop, evaluation, NaN guard
and checkpoints are :class:`policyopt.algos.core.base.Algorithm`'s; BC, TD3+BC, IQL, CQL and ReBRAC only add a
config, their losses and ``update``.

Observations are normalised by the dataset's mean and std (a module in the checkpoint, so
``act()`` takes raw observations after ``load``); actions are scaled to ``[-1, 1]`` from the
action space's bounds, and back when acting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from policyopt.algos.core.base import Algorithm, AlgorithmConfig
from policyopt.algos.core.checkpoint import space_from_description
from policyopt.algos.offpolicy.base import step_into_buffer
from policyopt.buffers import REWARD_CONVENTIONS, OfflineDataset, ReplayBuffer, make_sampler
from policyopt.buffers.dataset import normalized_score
from policyopt.buffers.samplers import SAMPLERS
from policyopt.nets import CriticEnsemble, DeterministicActor, QCritic, default_init
from policyopt.vecenvs import RecordEpisodeStatistics


@dataclass
class OfflineConfig(AlgorithmConfig):
    """Settings every offline algorithm has: the batch, the sampler, normalisation and networks."""

    batch_size: int = 256
    """transitions per gradient update"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target networks"""
    weighting: str = "uniform"
    """index sampler: uniform, rw (return-weighted), aw (advantage-weighted) or topk (Hong et al. 2023)"""
    temperature: float | None = None
    """rw/aw softmax temperature (None: the algorithm's value in Hong et al.'s launch scripts, 0.1 or 0.2)"""
    topk_fraction: float = 0.1
    """topk: the fraction of episodes kept, by return"""
    normalize_obs: bool = True
    """normalise observations by the dataset's mean and std (+1e-3), saved with the agent"""
    reward_convention: str = "none"
    """rewrite the rewards first: none, iql-locomotion (1000 / return range), antmaze (r - 1), cql-antmaze (10 r - 5)"""
    actor_hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the actor"""
    critic_hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the critics"""
    activation: str = "relu"
    """hidden activation of every MLP"""
    online_buffer_size: int = 1_000_000
    """offline-to-online: capacity of the replay buffer of the agent's own transitions"""
    online_mixing: float | None = None
    """offline-to-online: share of each batch from the agent's own transitions (None: in proportion to their number and the dataset's, as one buffer seeded with the dataset)"""
    exploration_noise: float = 0.03
    """offline-to-online: std of the Gaussian noise on a deterministic actor's actions in [-1, 1] (a stochastic actor samples)"""

    def __post_init__(self) -> None:
        if self.weighting not in SAMPLERS:
            raise ValueError(f"unknown weighting {self.weighting!r}; available: {', '.join(SAMPLERS)}")
        if self.reward_convention not in REWARD_CONVENTIONS:
            raise ValueError(f"unknown reward_convention {self.reward_convention!r}; available: {sorted(REWARD_CONVENTIONS)}")
        if self.batch_size < 1 or not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ValueError(
                f"batch_size must be >= 1, gamma in [0, 1] and tau in (0, 1]; got {self.batch_size}, {self.gamma}, {self.tau}"
            )
        if (
            self.online_buffer_size < 1
            or self.exploration_noise < 0
            or not (self.online_mixing is None or 0.0 <= self.online_mixing <= 1.0)
        ):
            raise ValueError(
                f"online_buffer_size must be >= 1, exploration_noise >= 0 and online_mixing None or in [0, 1]; got "
                f"{self.online_buffer_size}, {self.exploration_noise}, {self.online_mixing}"
            )
        self.actor_hidden, self.critic_hidden = tuple(self.actor_hidden), tuple(self.critic_hidden)


class ObsNormalizer(nn.Module):
    """``(obs - mean) / std`` with the dataset's statistics, as buffers (so checkpoints keep them)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


class DatasetSpaces:
    """Stands in for a dataset when a checkpoint is loaded only to act or evaluate."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, device: torch.device) -> None:
        self.observation_space, self.action_space, self.device = observation_space, action_space, device
        obs_dim = int(observation_space.shape[0])
        self.obs_mean, self.obs_std = torch.zeros(obs_dim, device=device), torch.ones(obs_dim, device=device)


class OfflineAlgorithm(Algorithm):
    """Base of the offline algorithms: trains from ``dataset`` alone.

    Subclasses set ``config_class`` (and ``default_temperature``), build ``self.policy``, their
    other networks and optimisers in ``_setup``, list them in ``modules()``, and implement
    ``update(batch, progress) -> device metrics``.
    """

    config_class: ClassVar[type[OfflineConfig]] = OfflineConfig
    config: OfflineConfig
    default_log_every = 1_000
    trains_on_dataset = True
    num_envs_help = (
        "offline there is no training env (--eval-episodes sizes the evaluation env); with --online-steps, "
        "the online env's copies, one update per transition"
    )
    step_unit = "gradient updates"
    iteration_name = "updates of"
    #: the rw/aw temperature of Hong et al.'s launch scripts for this algorithm
    default_temperature: ClassVar[float] = 0.1

    def __init__(
        self, dataset: OfflineDataset | DatasetSpaces, config: OfflineConfig | None = None, policy: nn.Module | None = None
    ) -> None:
        super().__init__(config, dataset.device, dataset.observation_space, dataset.action_space)
        cfg = self.config
        for name, space in (("observations", self.observation_space), ("actions", self.action_space)):
            if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
                raise ValueError(f"{type(self).__name__} needs 1-D Box {name}; got {space!r}")
        self.obs_dim, self.act_dim = int(self.observation_space.shape[0]), int(self.action_space.shape[0])
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            # scaling to [-1, 1] needs the bounds; guessing them would clip the data silently
            raise ValueError(
                f"{type(self).__name__} needs a bounded action space, but the dataset's is {self.action_space} "
                "(its actions leave [-1, 1] and the file stores no space); set dataset.action_space to the "
                "env's, e.g. dataset.action_space = env.single_action_space"
            )
        self._low = torch.as_tensor(low, dtype=torch.float32, device=self.device)
        self._half_range = torch.as_tensor((high - low) / 2, dtype=torch.float32, device=self.device)
        self.reference_scores: tuple[float, float] | None = None
        self.sampler = None
        if isinstance(dataset, OfflineDataset):
            dataset = copy.copy(dataset)  # the reward convention rewrites rewards on this copy, not the caller's
            dataset.metadata = dict(dataset.metadata)
            if cfg.reward_convention != "none":
                dataset.transform_rewards(cfg.reward_convention)
            try:
                self.reference_scores = dataset.reference_scores()
            except ValueError:
                pass
            mean, std = dataset.observation_stats() if cfg.normalize_obs else (None, None)
            temperature = (cfg.temperature or self.default_temperature) if cfg.weighting in ("rw", "aw") else None
            self.sampler = make_sampler(
                dataset,
                cfg.weighting,
                temperature=temperature,
                seed=cfg.seed,
                fraction=cfg.topk_fraction if cfg.weighting == "topk" else None,
            )
        else:
            mean, std = (dataset.obs_mean, dataset.obs_std) if cfg.normalize_obs else (None, None)
        self.dataset = dataset
        if mean is None:
            mean, std = torch.zeros(self.obs_dim, device=self.device), torch.ones(self.obs_dim, device=self.device)
        self.obs_normalizer = ObsNormalizer(mean, std).to(self.device)
        # the online phase's env, replay buffer and next observation (go_online); None while offline
        self.env: gym.vector.VectorEnv | None = None
        self.buffer: ReplayBuffer | None = None
        self._obs: torch.Tensor | None = None
        self._online_state: dict[str, Any] | None = None  # a loaded checkpoint's, until go_online restores it
        self.policy = policy
        self._setup()
        self.policy = self.policy.to(self.device)

    # --- to implement -----------------------------------------------------------------------
    def _setup(self) -> None:
        """Build ``self.policy`` (unless one was passed), the other networks and the optimisers."""
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        """One gradient update on a prepared batch (normalised obs, actions in [-1, 1]); returns device metrics."""
        raise NotImplementedError

    # --- helpers for the algorithms ----------------------------------------------------------
    def twin_critics(self, layer_norm: bool = False, n: int = 2) -> tuple[CriticEnsemble, CriticEnsemble]:
        """``n`` Q critics in one :class:`nets.CriticEnsemble` and a frozen copy as the target."""
        cfg = self.config

        def make_q() -> nn.Module:
            return default_init(QCritic(self.obs_dim, self.act_dim, cfg.critic_hidden, cfg.activation, layer_norm))

        critic = CriticEnsemble(n, make_q).to(self.device)
        target = copy.deepcopy(critic).requires_grad_(False)
        return critic, target

    def step(self, optimizer: str, loss: torch.Tensor, max_norm: float = 0.0) -> None:
        """One optimiser step on ``loss`` (zero_grad, backward, step), the gradient's global norm
        clipped at ``max_norm`` first when it is > 0."""
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if max_norm > 0:
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_norm)
        opt.step()

    # --- one iteration: a batch and its update ------------------------------------------------
    @property
    def steps_per_iteration(self) -> int:
        return 1 if self.env is None else self.num_envs

    @property
    def resumes_online(self) -> bool:
        """Whether the loaded checkpoint was written online, so :meth:`go_online` will restore its buffer and env."""
        return self._online_state is not None

    @property
    def online(self) -> bool:
        """Whether :meth:`go_online` has switched the agent to training on its own transitions too."""
        return self.env is not None

    def iterate(self, progress: float) -> tuple[int, dict[str, torch.Tensor]]:
        if self.sampler is None:
            raise RuntimeError(f"this {type(self).__name__} was loaded without a dataset; pass dataset= to load(...) to train it")
        if self.env is None:
            return 1, self.update(self.prepare(self.sampler.sample(self.config.batch_size)), progress)
        # online: one step of every env copy, then one update per transition collected
        obs = self._reset_if_needed()
        metrics = step_into_buffer(self, self._explore_env(obs), next_actions=self._explore_env)
        for _ in range(self.num_envs):
            metrics.update(self.update(self._mixed_batch(), progress))
        return self.num_envs, metrics

    def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A sampler's batch as the losses see it: normalised observations, actions in [-1, 1], discounts."""
        scale = lambda a: ((a - self._low) / self._half_range - 1.0).clamp(-1.0, 1.0)  # noqa: E731
        return {
            **batch,
            "obs": self.obs_normalizer(batch["obs"]),
            "next_obs": self.obs_normalizer(batch["next_obs"]),
            "actions": scale(batch["actions"]),
            "next_actions": scale(batch["next_actions"]),
            "discounts": torch.full_like(batch["rewards"], self.config.gamma),
        }

    @torch.no_grad()
    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.to_env_bounds(self.policy.act(self.obs_normalizer(obs), deterministic=deterministic).clamp(-1.0, 1.0))

    def to_env_bounds(self, action: torch.Tensor) -> torch.Tensor:
        """Actions in [-1, 1] mapped to the action space's ``[low, high]``."""
        return self._low + (action + 1.0) * self._half_range

    # --- offline-to-online ----------------------------------------------------------------------
    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Online exploration actions in [-1, 1] for normalised observations: a stochastic actor's
        sample, or a deterministic actor's action plus N(0, exploration_noise) (CORL's and ReBRAC's fine-tuning)."""
        action = self.policy.act(obs, deterministic=False)
        if isinstance(self.policy, DeterministicActor):
            action = action + self.config.exploration_noise * torch.randn_like(action)
        return action.clamp(-1.0, 1.0)

    @torch.no_grad()
    def _explore_env(self, obs: torch.Tensor) -> torch.Tensor:
        return self.to_env_bounds(self.explore(self.obs_normalizer(obs)))

    def go_online(self, env: gym.vector.VectorEnv) -> "OfflineAlgorithm":
        """Continue training online on ``env`` (offline-to-online fine-tuning, as CORL's and ReBRAC's).

        From the next :meth:`learn` on, an iteration steps every copy of ``env`` once with
        :meth:`explore`, stores the transitions (raw rewards and observations, env-space actions)
        in a replay buffer of ``config.online_buffer_size``, and runs one update per transition
        on a batch of ``batch_size`` that mixes the dataset (its sampler) with that buffer
        (``config.online_mixing``). Observations keep the dataset's normaliser and rewards its
        reward convention; ``global_step`` goes on counting, in env steps. After :meth:`load` of
        an online checkpoint, this restores its buffer and env state, so a resume is exact.
        """
        if self.sampler is None:
            raise RuntimeError(f"{type(self).__name__}.go_online needs the dataset; load the agent with dataset=")
        self.check_env(env)
        self.num_envs = env.num_envs
        self.env = RecordEpisodeStatistics(env)
        self.buffer = ReplayBuffer(
            self.config.online_buffer_size,
            self.num_envs,
            (self.obs_dim,),
            (self.act_dim,),
            device=self.device,
            gamma=self.config.gamma,
            store_next_actions=True,
        )
        self._obs = None
        if self._online_state is not None:
            state, self._online_state = self._online_state, None
            if state["num_envs"] == self.num_envs:
                self.buffer.load_state_dict(state["buffer"])
            self._load_env_state(state)
        return self

    def _mixed_batch(self) -> dict[str, torch.Tensor]:
        """A prepared batch of ``batch_size``: ``k`` of the agent's own transitions and the rest from the dataset."""
        cfg, n_online = self.config, len(self.buffer)
        share = cfg.online_mixing if cfg.online_mixing is not None else n_online / (n_online + self.dataset.num_transitions)
        k = min(round(cfg.batch_size * share), cfg.batch_size) if n_online else 0  # Python ints: no host sync
        parts = [self.sampler.sample(cfg.batch_size - k)] if k < cfg.batch_size else []
        if k:
            own = self.buffer.sample(k)
            transform = self.dataset.metadata.get("reward_transform")
            if transform is not None:  # the dataset's reward convention applies to the agent's rewards too
                own["rewards"] = own["rewards"] * transform["scale"] + transform["bias"]
            parts.append(own)
        return self.prepare(
            {
                key: torch.cat([p[key] for p in parts]) if len(parts) > 1 else parts[0][key]
                for key in ("obs", "actions", "rewards", "next_obs", "terminated", "next_actions")
            }
        )

    # --- evaluation ---------------------------------------------------------------------------
    def check_env(self, env: gym.vector.VectorEnv) -> None:
        """Raise ``ValueError`` naming both when ``env``'s observation or action shape (or finite
        action bounds) differ from the dataset's."""
        for name, mine, theirs in (
            ("observation", self.observation_space, env.single_observation_space),
            ("action", self.action_space, env.single_action_space),
        ):
            same = tuple(mine.shape) == tuple(theirs.shape)
            if same and name == "action" and np.isfinite(mine.low).all() and np.isfinite(theirs.low).all():
                same = np.allclose(mine.low, theirs.low) and np.allclose(mine.high, theirs.high)
            if not same:
                env_name = (
                    getattr(getattr(env, "spec", None), "id", None)
                    or getattr(env, "env_id", None)
                    or type(getattr(env, "unwrapped", env)).__name__
                )
                raise ValueError(
                    f"{type(self).__name__}'s dataset has {name}s {mine} (shape {tuple(mine.shape)}), but the "
                    f"evaluation env {env_name} has {theirs} (shape {tuple(theirs.shape)}): evaluate on the "
                    "env the dataset was recorded on"
                )

    def normalized_score(self, returns: float | np.ndarray) -> float | np.ndarray:
        """``100 (R - min) / (max - min)`` with the dataset's reference scores (D4RL's normalized score)."""
        if self.reference_scores is None:
            raise ValueError(
                f"{type(self).__name__}: the dataset has no reference scores; store 'ref_min_score' and "
                "'ref_max_score' in it (scripts/make_dataset.py does), or load D4RL files with "
                "OfflineDataset.from_d4rl so D4RL's constants apply"
            )
        return normalized_score(returns, *self.reference_scores)

    def _evaluate_and_report(
        self, eval_env: gym.vector.VectorEnv, write: Callable[[str], None], seed: int | None
    ) -> dict[str, float]:
        result = self.evaluate(eval_env, seed=seed)
        record = {"eval/return": result["return_mean"], "eval/return_std": result["return_std"]}
        line = f"{'env step' if self.online else 'update'} {self.global_step:>9,}: eval return {result['return_mean']:9.1f} ± {result['return_std']:.1f}"
        if self.reference_scores is not None:
            record["eval/normalized_score"] = float(self.normalized_score(result["return_mean"]))
            line += f", normalized {record['eval/normalized_score']:.1f}"
        write(line)
        return record

    # --- checkpoints --------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        """The sampler's random state, the reference scores and, online, the replay buffer and the env's state."""
        online = None if self.env is None else {"buffer": self.buffer.state_dict(), **self._env_state()}
        return {
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
            "reference_scores": self.reference_scores,
            "online": online,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._online_state = state.get("online")
        if self.sampler is not None and state["sampler"] is not None:
            self.sampler.load_state_dict(state["sampler"])
        if state["reference_scores"] is not None:
            self.reference_scores = tuple(state["reference_scores"])

    @classmethod
    def load(
        cls,
        path: str | Path,
        dataset: OfflineDataset | None = None,
        device: str | torch.device | None = None,
        modules: Sequence[str] | None = None,
        policy: nn.Module | None = None,
        env: Any = None,
        trusted_classes: Sequence[type | str] = (),
    ) -> "OfflineAlgorithm":
        """Rebuild an agent from a checkpoint: with ``dataset`` it continues training exactly (the
        sampler's draws included); without one it acts and evaluates on raw observations. Loading runs
        no code from the file; ``trusted_classes`` and ``policy`` are as in :meth:`Algorithm.load`."""
        return super().load(
            path,
            env=dataset if dataset is not None else env,
            device=device,
            modules=modules,
            policy=policy,
            trusted_classes=trusted_classes,
        )

    @classmethod
    def _source_for_load(cls, state: dict[str, Any], path: Path, source: Any, device: Any) -> Any:
        obs_space = space_from_description(state["observation_space"])
        act_space = space_from_description(state["action_space"])
        if source is None:  # acting only: the normaliser's statistics come with the modules
            dev = torch.device(device or "cpu")
            spaces = DatasetSpaces(obs_space, act_space, dev)
            spaces.obs_mean = state["modules"]["obs_normalizer"]["mean"].to(dev)
            spaces.obs_std = state["modules"]["obs_normalizer"]["std"].to(dev)
            return spaces
        if not isinstance(source, OfflineDataset):
            raise TypeError(
                f"{cls.__name__}.load takes the training dataset (an OfflineDataset) to continue training, "
                f"got {type(source).__name__}"
            )
        if tuple(source.observation_space.shape) != tuple(obs_space.shape) or tuple(source.action_space.shape) != tuple(
            act_space.shape
        ):
            raise ValueError(
                f"checkpoint {path} was trained on observations {tuple(obs_space.shape)} and actions "
                f"{tuple(act_space.shape)}, but {source.source} has {tuple(source.observation_space.shape)} and "
                f"{tuple(source.action_space.shape)}"
            )
        return source if device is None else source.to(device)
