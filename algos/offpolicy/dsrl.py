"""DSRL: Diffusion Steering via Reinforcement Learning (Wagenmaker et al., CoRL 2025; ``ajwagen/dsrl``).

A pretrained diffusion or flow policy stays frozen; SAC acts in its *noise* space. The latent MDP
has the base policy's initial noise ``w`` as its action, ``P^W(. | s, w) = P(. | s, pi_base(s, w))``,
where ``pi_base(s, w)`` is the base's deterministic noise-to-action map
(:meth:`~nets.generative.GenerativePolicy.sample_from_noise`: DDIM with eta 0 or DPM-Solver for a
diffusion policy, the ODE for a flow policy). This is the paper's DSRL-SAC variant: the replay
buffer, the critics and the actor all live in the noise space, and the base is only ever run
forward. (DSRL-NA, noise aliasing, which trains an action-space critic and distils a noise-space
one, is not implemented.)

SAC and the off-policy loop are reused unchanged: the only difference is the training env. SAC's
squashed actions ``a`` in ``[-1, 1]^act_dim`` are the noise divided by ``noise_bound`` (the paper's
``action_magnitude``, 1.5), and :class:`NoiseActionWrapper` steps the env with

    env_action = to_env_bounds(pi_base(normalize(s), noise_bound * a)),

so the buffer stores ``a`` (the scaled noise), never the env action. ``act(obs)`` returns env actions,
so evaluation and ``scripts/evaluate.py`` work as for any agent. Checkpoints carry a copy of the
frozen base (modules ``base_policy`` and ``base_obs_normalizer``, its constructor in the extra
state), so :meth:`DSRL.load` needs only the DSRL checkpoint, not the base's file.

The base comes from an offline checkpoint (``config.base``; ``--base CHECKPOINT`` on the command
line): its ``policy`` module, rebuilt from its recorded spec, and its ``obs_normalizer``, both
frozen in eval mode. It must act on the env's spaces (same shapes and action bounds). The paper's
other defaults (UTD 20, 3x128 LayerNorm MLPs, 4 training envs) are not SAC's here; pass them as
flags (``--algo.gradient-steps 20``, ``--algo.actor-hidden 128 128 128``, ``--num-envs 4``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import tyro
from gymnasium.vector.utils import batch_space
from torch import nn

from policyopt.algos.core.checkpoint import check_pretrained_fits, load_checkpoint, space_from_description
from policyopt.algos.offline.base import ObsNormalizer
from policyopt.algos.offpolicy.sac import SAC, SACConfig
from policyopt.nets.spec import build_module, module_spec
from policyopt.vecenvs.core import TorchVecEnvWrapper, as_actions


@dataclass
class DSRLConfig(SACConfig):
    """DSRL settings: SAC's, plus the frozen base policy and the bound of the noise SAC acts in."""

    # The alias gives the training CLI a short --base besides --algo.base.
    base: Annotated[str | None, tyro.conf.arg(aliases=("--base",))] = None
    """the frozen base policy: an offline checkpoint of a diffusion or flow policy (e.g. a run of scripts/train_diffusion_bc.py, --algo.family flow for a flow one); DSRL's own checkpoints keep a copy"""
    noise_bound: float = 1.5
    """SAC acts on the base's initial noise in [-noise_bound, noise_bound]^act_dim (the paper's action_magnitude: 1.5)"""
    base_steps: int | None = None
    """denoising (diffusion) or ODE (flow) steps of the base's deterministic sampler per action (None: the base's own default)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.noise_bound > 0 or (self.base_steps is not None and self.base_steps < 1):
            raise ValueError(f"noise_bound must be > 0 and base_steps None or >= 1; got {self.noise_bound}, {self.base_steps}")


class BasePolicy(NamedTuple):
    """A frozen generative policy and the observation normaliser it was trained with: what DSRL steers.

    ``policy`` maps ``(normalized obs, noise)`` to actions in ``[-1, 1]`` with ``sample_from_noise``;
    ``observation_space`` and ``action_space`` are those it was trained on (its ``[-1, 1]`` maps to
    ``action_space``'s bounds); ``source`` says where it came from, for messages.
    """

    policy: nn.Module
    obs_normalizer: ObsNormalizer
    observation_space: gym.Space
    action_space: gym.Space
    source: str

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "BasePolicy":
        """The ``policy`` and ``obs_normalizer`` of an offline checkpoint (Diffusion-BC, Diffusion-QL, EDP,
        Consistency-BC/AC, or any whose policy has ``sample_from_noise``); ``ValueError`` naming what the
        checkpoint holds otherwise, ``FileNotFoundError`` when there is no file."""
        path = Path(path)
        try:
            state = load_checkpoint(path, map_location="cpu")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"DSRL's base checkpoint {path} does not exist; pass --base (--algo.base) the "
                "checkpoint.pt of a diffusion or flow policy's offline run"
            ) from None
        source = f"{path} ({state['algo']} checkpoint)"
        spec, modules = state.get("policy_spec"), state.get("modules", {})
        if spec is None:
            raise ValueError(
                f"DSRL's base {source}: its {state.get('policy_class')} policy did not record how to rebuild "
                "it; expected a policy from nets.generative (DiffusionPolicy, FlowPolicy, ConsistencyPolicy)"
            )
        return cls.from_modules(
            spec,
            modules["policy"],
            modules.get("obs_normalizer"),
            space_from_description(state["observation_space"]),
            space_from_description(state["action_space"]),
            source,
        )

    @classmethod
    def from_modules(
        cls,
        spec: dict[str, Any],
        policy_state: dict[str, torch.Tensor],
        normalizer_state: dict[str, torch.Tensor] | None,
        observation_space: gym.Space,
        action_space: gym.Space,
        source: str,
    ) -> "BasePolicy":
        """Rebuild the policy from its recorded ``spec``, load its weights and the normaliser's statistics
        (``mean`` and ``std``), freeze both; ``ValueError`` when it is no generative policy or has no normaliser."""
        policy = build_module(spec)
        if not callable(getattr(policy, "sample_from_noise", None)):
            raise ValueError(
                f"DSRL steers a generative policy through its initial noise, but the base {source} has a "
                f"{spec['class']} policy, which has no sample_from_noise(obs, noise); expected a diffusion or "
                "flow policy (nets.generative DiffusionPolicy, FlowPolicy or ConsistencyPolicy), e.g. from "
                "scripts/train_diffusion_bc.py (--algo.family flow for a flow policy)"
            )
        if normalizer_state is None:
            raise ValueError(
                f"DSRL's base {source} has no 'obs_normalizer' module; expected an offline checkpoint "
                "(OfflineAlgorithm: its policy sees observations normalised by the dataset's statistics)"
            )
        policy.load_state_dict(policy_state)
        normalizer = ObsNormalizer(normalizer_state["mean"], normalizer_state["std"])
        # frozen: no gradient ever reaches the base, and eval mode pins any train-time behaviour
        return cls(
            policy.requires_grad_(False).eval(), normalizer.requires_grad_(False).eval(), observation_space, action_space, source
        )

    def to(self, device: torch.device) -> "BasePolicy":
        return self._replace(policy=self.policy.to(device), obs_normalizer=self.obs_normalizer.to(device))


class NoiseActionWrapper(TorchVecEnvWrapper):
    """The latent-noise MDP: takes actions in ``[-1, 1]^act_dim`` and steps the wrapped env with
    ``env_action(obs, actions)``, ``obs`` being the observation the actions answer (the last one
    ``reset`` or ``step`` returned, kept in the wrapper's state so a resume is exact)."""

    def __init__(self, env: gym.vector.VectorEnv, env_action: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__(env)
        shape = env.single_action_space.shape
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape, np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._env_action = env_action
        self._device = torch.device(env.device)
        self._last_obs: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        return obs, info

    def step(self, actions: torch.Tensor | np.ndarray):
        if self._last_obs is None:
            raise RuntimeError("NoiseActionWrapper: reset the env before stepping it (the noise is mapped given the observation)")
        actions = as_actions(actions, self.single_action_space, self.num_envs, self._device)
        out = self.env.step(self._env_action(self._last_obs, actions))
        self._last_obs = out[0]  # after autoreset: the observation the next actions answer
        return out

    def _own_state(self) -> dict[str, Any]:
        return {"obs": None if self._last_obs is None else self._last_obs.clone()}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        self._last_obs = None if state["obs"] is None else state["obs"].to(self._device).clone()


class _WithBase(NamedTuple):
    """What :meth:`DSRL._source_for_load` hands the constructor: the env (or stand-in) and the checkpoint's base."""

    env: Any
    base: BasePolicy


class DSRL(SAC):
    """SAC in the noise space of a frozen diffusion or flow policy (DSRL-SAC, Wagenmaker et al. 2025).

    ``DSRL(env, DSRLConfig(base="runs/diffusionbc/.../checkpoint.pt"))``, or ``base=`` a
    :class:`BasePolicy` directly. ``act(obs)`` gives env actions; :meth:`env_action` is the map
    from SAC's actions (noise / ``noise_bound``) to them. ``DSRL.load(path)`` rebuilds the agent from its
    checkpoint alone, the frozen base included (``config.base``'s file is not read again).
    """

    config_class = DSRLConfig
    config: DSRLConfig

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        config: DSRLConfig | None = None,
        policy: nn.Module | None = None,
        base: BasePolicy | None = None,
    ) -> None:
        if isinstance(env, _WithBase):  # from load: the base comes from the DSRL checkpoint, not config.base's file
            env, base = env
        config = config if config is not None else self.config_class()
        if not isinstance(config, DSRLConfig):
            raise TypeError(f"DSRL needs a DSRLConfig (SAC's settings plus base and noise_bound), got {type(config).__name__}")
        if base is None:
            if not config.base:
                raise ValueError(
                    "DSRL needs a base policy to steer: set DSRLConfig.base (--base CHECKPOINT on the command "
                    "line) to an offline checkpoint of a diffusion or flow policy, or pass base=BasePolicy(...)"
                )
            base = BasePolicy.from_checkpoint(config.base)  # built before Algorithm seeds torch, so it shifts no draws
        _check_base_fits(base, env)
        if module_spec(base.policy) is None:  # checkpoints rebuild the base from its recorded constructor
            raise ValueError(
                f"DSRL's base policy {type(base.policy).__name__} does not record its constructor; make it a "
                "nets.RecordsInit (every nets.generative policy is) defined outside __main__"
            )
        super().__init__(env, config, policy)
        base = base.to(self.device)
        self.base = base
        self.base_policy, self.base_obs_normalizer = base.policy, base.obs_normalizer
        try:  # a dry run: the noise shape and base_steps fit the base, before any env step
            self.base_policy.sample_from_noise(
                torch.zeros(1, self.obs_dim, device=self.device),
                torch.zeros(1, self.act_dim, device=self.device),
                steps=self.config.base_steps,
            )
        except (ValueError, NotImplementedError) as e:
            raise ValueError(f"DSRL cannot run the base {base.source} with base_steps={self.config.base_steps}: {e}") from e
        # SAC's [-1, 1] actions go to the env through the base, not through the affine RescaleAction
        # OffPolicyAlgorithm put there; the episode statistics below it stay.
        self.env = NoiseActionWrapper(self.env.env, self.env_action)

    @torch.no_grad()
    def env_action(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Env actions for raw observations and SAC's actions in ``[-1, 1]``: the noise
        ``w = noise_bound * actions`` through the base's deterministic sampler, then to the env's bounds."""
        noise = self.config.noise_bound * actions.clamp(-1.0, 1.0)
        base_action = self.base_policy.sample_from_noise(self.base_obs_normalizer(obs), noise, steps=self.config.base_steps)
        return self.to_env_bounds(base_action.clamp(-1.0, 1.0))

    @torch.no_grad()
    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.env_action(obs, self.policy.act(obs, deterministic=deterministic))

    # --- checkpoints: the base travels with the agent ---------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "base_policy": self.base_policy, "base_obs_normalizer": self.base_obs_normalizer}

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "base": {"spec": module_spec(self.base_policy), "source": self.base.source}}

    @classmethod
    def _source_for_load(cls, state: dict[str, Any], path: Path, env: Any, device: str | torch.device | None) -> Any:
        source = super()._source_for_load(state, path, env, device)
        modules, info = state["modules"], state["extra"]["base"]
        base = BasePolicy.from_modules(
            info["spec"],
            modules["base_policy"],
            modules["base_obs_normalizer"],
            source.single_observation_space,
            source.single_action_space,
            info["source"],
        )
        return _WithBase(source, base)


def _check_base_fits(base: BasePolicy, env: Any) -> None:
    """The base must act on ``env``'s spaces: same observation shape, same action shape and bounds
    (its ``[-1, 1]`` actions are mapped to the env's bounds, so other bounds would misread them)."""
    if not isinstance(env.single_action_space, gym.spaces.Box):
        return  # OffPolicyAlgorithm names the discrete-action error
    check_pretrained_fits(
        f"DSRL's base {base.source}",
        base.observation_space,
        base.action_space,
        env.single_observation_space,
        env.single_action_space,
        "train the base on a dataset of this env (with its action bounds: scripts/train_diffusion_bc.py --env-id sets them)",
    )


__all__ = ["DSRL", "DSRLConfig", "BasePolicy", "NoiseActionWrapper"]
