"""On-policy stochastic policies and the seam the on-policy algorithms are written against.

PPO, TRPO and SPO never touch a distribution object directly when collecting data or
computing the surrogate: they call

- ``explore(obs) -> (actions, stored)`` during rollouts; the rollout buffer keeps every
  tensor of ``stored`` per step (leading dim N) and hands it back unchanged;
- ``log_ratio(obs, actions, stored)`` in the update, ``log pi_new(a|s) - log pi_old(a|s)``;
- ``entropy(obs)`` for an entropy bonus, when the policy has one in closed form
  (``log_ratio_and_entropy`` gives both from one forward pass).

For Gaussian and categorical policies ``stored`` is ``{"log_prob": [N]}``; a diffusion
policy would store its denoising chain and a flow policy its ``(tau, noise)`` samples, and
compute ``log_ratio`` (or a surrogate of it) from them, with no change to the algorithms.
Only TRPO additionally needs ``distribution(obs)`` (for the KL and Fisher-vector products),
which the closed-form policies below provide.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

import gymnasium as gym
import torch
import torch.nn as nn
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal

from policyopt.nets.heads import CategoricalHead, DiagGaussianHead, StateDependentNoiseHead
from policyopt.nets.mlp import body_out_dim, mlp_body
from policyopt.nets.spec import RecordsInit


class StochasticPolicy(RecordsInit, nn.Module, abc.ABC):
    """Abstract on-policy policy: the interface between a policy and PPO/TRPO/SPO.

    Implementations must be batched over a leading dim and device-agnostic.

    - ``act(obs, deterministic)`` -> actions ``[B, ...]`` for evaluation (no gradient);
    - ``explore(obs)`` -> ``(actions, stored)``: sampled actions plus the dict of tensors,
      each with leading dim ``B``, that ``log_ratio`` will need later (no gradient);
    - ``log_ratio(obs, actions, stored)`` -> ``[B]``, ``log pi_theta(a|s) - log pi_old(a|s)``,
      differentiable w.r.t. the current parameters; 0 when the parameters have not changed.
      It may also be ``[B, *extra]`` (e.g. one ratio per denoising step, as DPPO uses): PPO's
      and SPO's losses broadcast each sample's advantage over the extra dims;
    - ``entropy(obs)`` -> ``[B]`` or ``None`` when there is no closed form.
    """

    @abc.abstractmethod
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions for ``obs``: the mode when ``deterministic``, else a sample."""

    @abc.abstractmethod
    def explore(self, obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Sample rollout actions and return what must be stored per step to evaluate them later."""

    @abc.abstractmethod
    def log_ratio(self, obs: Tensor, actions: Tensor, stored: dict[str, Tensor]) -> Tensor:
        """``log(pi_new(a|s) / pi_old(a|s))`` per sample ``[B]``, differentiable w.r.t. the parameters."""

    def entropy(self, obs: Tensor) -> Tensor | None:
        """Per-sample entropy ``[B]``, or ``None`` when it has no closed form."""
        return None

    def log_ratio_and_entropy(self, obs: Tensor, actions: Tensor, stored: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """``(log_ratio, entropy)`` in one call; override to share the forward pass."""
        return self.log_ratio(obs, actions, stored), self.entropy(obs)

    def begin_rollout(self, num_envs: int) -> None:
        """Called by the algorithms before each rollout of ``num_envs`` envs (gSDE redraws its noise here)."""

    def forward(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        return self.act(obs, deterministic)


def _stored_log_prob(stored: dict[str, Tensor]) -> Tensor:
    try:
        return stored["log_prob"]
    except KeyError:
        raise KeyError(f"stored must hold the 'log_prob' returned by explore(); got keys {sorted(stored)}") from None


class DistributionPolicy(StochasticPolicy):
    """A policy with an explicit ``distribution(obs)``: it stores log-probs at rollout time and
    gets ``log_ratio`` and ``entropy`` from the distribution (Gaussian, categorical)."""

    @abc.abstractmethod
    def distribution(self, obs: Tensor) -> Distribution:
        """The action distribution at ``obs`` (differentiable; TRPO's KL uses it too)."""

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """``log pi(a|s)``, ``[B]``."""
        return self.distribution(obs).log_prob(actions)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        dist = self.distribution(obs)
        return dist.mode if deterministic else dist.sample()  # the mean, or the most likely action

    @torch.no_grad()
    def explore(self, obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        dist = self.distribution(obs)
        actions = dist.sample()
        return actions, {"log_prob": dist.log_prob(actions)}

    def log_ratio(self, obs: Tensor, actions: Tensor, stored: dict[str, Tensor]) -> Tensor:
        # PPO's ratio r_t = pi_theta(a|s) / pi_old(a|s) in log space (Schulman et al. 2017, eq. 6).
        return self.log_prob(obs, actions) - _stored_log_prob(stored)

    def entropy(self, obs: Tensor) -> Tensor:
        return self.distribution(obs).entropy()

    def log_ratio_and_entropy(self, obs: Tensor, actions: Tensor, stored: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        dist = self.distribution(obs)  # one forward pass for both
        return dist.log_prob(actions) - _stored_log_prob(stored), dist.entropy()


class GaussianPolicy(DistributionPolicy):
    """Diagonal Gaussian policy over unbounded actions (PPO/TRPO for continuous control).

    Actions are not squashed or clipped: bounding them is the env side's job (a
    RescaleAction/ClipAction wrapper), as in CleanRL and SB3, so the log-probabilities are
    exactly those of the Gaussian. ``log_std`` is a state-independent parameter by default.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str | type[nn.Module] = "tanh",
        layer_norm: bool = False,
        state_dependent_std: bool = False,
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.body = mlp_body(obs_dim, hidden, activation, layer_norm)
        self.head = DiagGaussianHead(
            body_out_dim(obs_dim, hidden), act_dim, state_dependent_std=state_dependent_std, log_std_init=log_std_init
        )

    def distribution(self, obs: Tensor) -> Distribution:
        """``Independent(Normal(mean, std), 1)``: log_prob and entropy sum over the action dims."""
        mean, log_std = self.head(self.body(obs))
        # validate_args=False: the checks would force a host sync on accelerators.
        return Independent(Normal(mean, log_std.exp(), validate_args=False), 1, validate_args=False)


class GSDEPolicy(DistributionPolicy):
    """Gaussian policy with generalized state-dependent exploration (gSDE; Raffin et al. 2022).

    During rollouts each env explores with ``a = mean(s) + z(s) @ theta_env``, where ``z`` are
    the last hidden features and ``theta_env`` is redrawn at the start of every rollout and
    every ``sample_freq`` steps (-1: once per rollout). The noise is then smooth in time
    instead of white, which is what makes gSDE sample-efficient on continuous control. The
    log-probabilities, the entropy and TRPO's KL use the marginal Gaussian
    ``N(mean(s), z(s)^2 @ sigma^2)`` (see :class:`nets.StateDependentNoiseHead`).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str | type[nn.Module] = "tanh",
        layer_norm: bool = False,
        log_std_init: float = 0.0,
        sample_freq: int = -1,
        learn_features: bool = False,
    ) -> None:
        super().__init__()
        if sample_freq == 0 or sample_freq < -1:
            raise ValueError(f"sample_freq must be -1 (once per rollout) or >= 1, got {sample_freq}")
        self.obs_dim, self.act_dim, self.sample_freq = int(obs_dim), int(act_dim), int(sample_freq)
        self.body = mlp_body(obs_dim, hidden, activation, layer_norm)
        self.head = StateDependentNoiseHead(body_out_dim(obs_dim, hidden), act_dim, log_std_init, learn_features=learn_features)
        self._matrices: Tensor | None = None  # [N, features, act_dim], redrawn by begin_rollout
        self._steps = 0

    def distribution(self, obs: Tensor) -> Distribution:
        """The marginal ``Independent(Normal(mean, std(s)), 1)``."""
        mean, std = self.head(self.body(obs))
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)

    def begin_rollout(self, num_envs: int) -> None:
        self._matrices = self.head.sample_matrices(num_envs)
        self._steps = 0

    @torch.no_grad()
    def explore(self, obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        n = obs.shape[0]
        redraw = self.sample_freq > 0 and self._steps > 0 and self._steps % self.sample_freq == 0
        if self._matrices is None or self._matrices.shape[0] != n or redraw:
            self._matrices = self.head.sample_matrices(n)
        self._steps += 1
        features = self.body(obs)
        mean, std = self.head(features)
        actions = mean + self.head.noise(features, self._matrices)
        log_prob = Normal(mean, std, validate_args=False).log_prob(actions).sum(-1)
        return actions, {"log_prob": log_prob}


class CategoricalPolicy(DistributionPolicy):
    """Categorical policy over ``n_actions`` discrete actions; actions are int64 ``[B]``."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str | type[nn.Module] = "tanh",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.body = mlp_body(obs_dim, hidden, activation, layer_norm)
        self.head = CategoricalHead(body_out_dim(obs_dim, hidden), n_actions)

    def distribution(self, obs: Tensor) -> Categorical:
        """``Categorical(logits=...)`` over the actions."""
        return Categorical(logits=self.head(self.body(obs)), validate_args=False)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """``log pi(a|s)``, ``[B]``; ``actions`` are cast to int64 (a float buffer is tolerated)."""
        return self.distribution(obs).log_prob(actions.long())


_GAUSSIAN_ONLY = ("state_dependent_std", "log_std_init", "use_sde", "sde_sample_freq")
_SUPPORTED = "observations: a 1-D gymnasium.spaces.Box; actions: a 1-D Box (Gaussian) or a Discrete starting at 0 (categorical)"


def make_policy(observation_space: gym.Space, action_space: gym.Space, **kwargs: Any) -> StochasticPolicy:
    """Build the policy for single-env spaces: Box actions -> ``GaussianPolicy`` (``GSDEPolicy``
    with ``use_sde=True``), Discrete -> ``CategoricalPolicy``.

    ``kwargs`` go to the policy constructor (``hidden``, ``activation``, ``layer_norm``,
    and for Gaussians ``state_dependent_std``, ``log_std_init``, ``use_sde``,
    ``sde_sample_freq``; all but ``use_sde=True`` are ignored for discrete actions, so one
    config can serve both). Any other space raises ``ValueError``.
    Pass the *single-env* spaces (``env.single_observation_space``), not the batched ones.
    """
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
        raise ValueError(
            f"unsupported observation space {observation_space!r} ({type(observation_space).__name__}); "
            f"supported: {_SUPPORTED}. (Batched spaces from a vector env? pass env.single_observation_space.)"
        )
    obs_dim = int(observation_space.shape[0])
    if isinstance(action_space, gym.spaces.Box):
        if len(action_space.shape) != 1:
            raise ValueError(
                f"unsupported action space {action_space!r}: Box actions must be 1-D; supported: {_SUPPORTED}. "
                "(Batched spaces from a vector env? pass env.single_action_space.)"
            )
        use_sde, sample_freq = kwargs.pop("use_sde", False), kwargs.pop("sde_sample_freq", -1)
        if use_sde:
            if kwargs.pop("state_dependent_std", False):
                raise ValueError("use_sde and state_dependent_std are two different state-dependent noises; pick one")
            return GSDEPolicy(obs_dim, int(action_space.shape[0]), sample_freq=sample_freq, **kwargs)
        return GaussianPolicy(obs_dim, int(action_space.shape[0]), **kwargs)
    if isinstance(action_space, gym.spaces.Discrete):
        if int(action_space.start) != 0:
            raise ValueError(f"unsupported action space {action_space!r}: Discrete must start at 0; supported: {_SUPPORTED}")
        if kwargs.get("use_sde"):
            raise ValueError(f"use_sde (gSDE) needs continuous Box actions; got {action_space!r}")
        kwargs = {k: v for k, v in kwargs.items() if k not in _GAUSSIAN_ONLY}
        return CategoricalPolicy(obs_dim, int(action_space.n), **kwargs)
    raise ValueError(f"unsupported action space {action_space!r} ({type(action_space).__name__}); supported: {_SUPPORTED}")
