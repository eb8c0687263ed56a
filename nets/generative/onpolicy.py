"""Generative policies behind the on-policy seam (:class:`nets.StochasticPolicy`): PPO, SPO and their
DPPO / FPO subclasses train them with no change to the rollout or the update loop.

- :class:`DiffusionPPOPolicy` (DPPO, Ren et al. 2025): a :class:`DiffusionPolicy` sampled by DDIM with
  ``eta > 0``; ``explore`` stores the fine-tuned part of the denoising chain and its per-step
  log-probs, ``log_ratio`` is one ratio per fine-tuned denoising step, ``[B, K']``;
- :class:`FlowPPOPolicy` (FPO, McAllister et al. 2025): a :class:`FlowPolicy` sampled by Euler;
  ``explore`` stores ``N`` Monte-Carlo ``(tau, eps)`` pairs per action and their CFM losses, and
  ``log_ratio`` is ``L_old - L_new``, averaged over the pairs (``[B]``) or per pair (``[B, N]``, FPO++).

Both generate in ``[-1, 1]^act_dim`` and map to the env's Box bounds, stored as buffers, so
``explore`` / ``act`` return env actions and the algorithms need no action wrapper.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any, Sequence

import torch
from torch import Tensor

from policyopt.nets.generative.diffusion import DiffusionPolicy
from policyopt.nets.generative.flow import SOLVERS, FlowPolicy
from policyopt.nets.generative.samplers import ddim_step, gaussian_chain
from policyopt.nets.policies import StochasticPolicy
from policyopt.nets.spec import module_spec

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class _BoxMap(StochasticPolicy):
    """Shared by both policies: the affine map between ``[-1, 1]`` and the env's ``[low, high]``."""

    def _register_bounds(self, act_dim: int, low: Sequence[float], high: Sequence[float]) -> None:
        low_t = torch.as_tensor(low, dtype=torch.float32).reshape(-1)
        high_t = torch.as_tensor(high, dtype=torch.float32).reshape(-1)
        if low_t.shape != (act_dim,) or high_t.shape != (act_dim,):
            raise ValueError(
                f"action_low and action_high must each hold act_dim={act_dim} bounds, got "
                f"{tuple(low_t.shape)} and {tuple(high_t.shape)}"
            )
        if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all() and (high_t > low_t).all()):
            raise ValueError(
                f"{type(self).__name__} needs finite Box bounds with high > low (it generates in [-1, 1] "
                f"and maps there); got low={low_t.tolist()}, high={high_t.tolist()}"
            )
        # buffers: they follow .to(device) and are part of the checkpoint
        self.register_buffer("action_low", low_t)
        self.register_buffer("action_high", high_t)

    def to_env(self, a: Tensor) -> Tensor:
        """``[-1, 1]`` -> ``[low, high]``."""
        return self.action_low + (a + 1.0) * (self.action_high - self.action_low) / 2

    def from_env(self, a: Tensor) -> Tensor:
        """``[low, high]`` -> ``[-1, 1]``, the inverse of :meth:`to_env`."""
        return (a - self.action_low) * 2 / (self.action_high - self.action_low) - 1.0


def _stored(stored: dict[str, Tensor], key: str) -> Tensor:
    try:
        return stored[key]
    except KeyError:
        raise KeyError(f"stored must hold the {key!r} returned by explore(); got keys {sorted(stored)}") from None


def _bound_kwargs(module: Any, cls: type) -> dict[str, Any]:
    """All constructor arguments (defaults filled in) a ``cls`` instance was built with."""
    if type(module) is not cls:
        raise TypeError(f"expected a {cls.__name__}, got {type(module).__name__}")
    spec = module_spec(module)
    bound = inspect.signature(cls).bind(*spec["args"], **spec["kwargs"])
    bound.apply_defaults()
    return dict(bound.arguments)


class DiffusionPPOPolicy(_BoxMap):
    """A diffusion policy fine-tuned by PPO over its denoising steps (DPPO; Ren et al., ICLR 2025).

    Each denoising step ``x_{i+1} ~ N(mu_theta(x_i, k_i, s), std_i^2)`` of a DDIM chain with
    ``eta > 0`` (``eta = 1`` is the DDPM posterior) is a Gaussian policy of the denoising MDP, so
    ``log_ratio`` is one PPO ratio per step. Only the last ``ft_denoising_steps`` (K') of the
    ``denoising_steps`` (K) are fine-tuned: the earlier ones run a frozen copy of the initial
    (pretrained) denoiser (``frozen``; none when ``K' = K``), and only the fine-tuned part of the
    chain, ``[B, K' + 1, act_dim]``, is stored. Std floors: ``min_sampling_std`` while sampling
    (exploration), ``min_logprob_std`` when scoring (the last, noiseless step gets a density).

    ``act(deterministic=True)`` is the DDIM ``eta = 0`` ODE from zero noise (evaluation: a
    repeatable action); ``act(deterministic=False)`` samples as in training. The advantage discount
    ``gamma_denoise^k`` and DPPO's per-step clip schedule are the algorithm's (:mod:`policyopt.algos.onpolicy.dppo`);
    plain PPO with this policy gives every step the sample's advantage (``gamma_denoise = 1``).

    ``diffusion_kwargs`` go to :class:`DiffusionPolicy` (``num_timesteps``, ``schedule``,
    ``hidden``, ...; its own ``sampler``/``eta``/``min_sampling_std`` are not used here).
    :meth:`wrap` builds one around an existing (e.g. pretrained) ``DiffusionPolicy``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        denoising_steps: int | None = None,
        ft_denoising_steps: int | None = None,
        eta: float = 1.0,
        min_sampling_std: float = 0.1,
        min_logprob_std: float = 0.1,
        diffusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.diffusion = DiffusionPolicy(obs_dim, act_dim, **(diffusion_kwargs or {}))
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self._register_bounds(self.act_dim, action_low, action_high)
        K = self.diffusion._steps(denoising_steps)  # an int in 1..num_timesteps, else ValueError
        ft = K if ft_denoising_steps is None else ft_denoising_steps
        if isinstance(ft, bool) or not isinstance(ft, int) or not 1 <= ft <= K:
            raise ValueError(
                f"ft_denoising_steps (K') must be an int in 1..K = {K} (the denoising steps; None: all of "
                f"them), got {ft_denoising_steps!r}"
            )
        if not float(eta) > 0:
            raise ValueError(
                f"eta must be > 0 for training: DPPO samples DDIM with eta > 0 (1: DDPM) so every step has a "
                f"likelihood; eta = 0 is deterministic and is what act(deterministic=True) uses. Got {eta}"
            )
        if not float(min_sampling_std) >= 0 or not float(min_logprob_std) > 0:
            raise ValueError(f"min_sampling_std must be >= 0 and min_logprob_std > 0, got {min_sampling_std}, {min_logprob_std}")
        self.denoising_steps, self.ft_denoising_steps = K, ft
        self.eta, self.min_sampling_std, self.min_logprob_std = float(eta), float(min_sampling_std), float(min_logprob_std)
        grid = self.diffusion.schedule.timesteps(K)
        self._frozen_ks = frozenset(grid[: K - ft])
        # the early steps' denoiser: a frozen copy of the initial one (DPPO's `actor`, next to `actor_ft`)
        self.frozen = copy.deepcopy(self.diffusion).requires_grad_(False) if ft < K else None
        tail = grid[K - ft :]
        self.register_buffer("_k", torch.tensor(tail), persistent=False)
        self.register_buffer("_k_next", torch.tensor(tail[1:] + [-1]), persistent=False)

    @classmethod
    def wrap(
        cls, diffusion: DiffusionPolicy, action_low: Sequence[float], action_high: Sequence[float], **kwargs: Any
    ) -> "DiffusionPPOPolicy":
        """A policy around ``diffusion``'s architecture and weights (both copies), e.g. a pretrained one."""
        args = _bound_kwargs(diffusion, DiffusionPolicy)
        obs_dim, act_dim = args.pop("obs_dim"), args.pop("act_dim")
        policy = cls(obs_dim, act_dim, action_low, action_high, diffusion_kwargs=args, **kwargs)
        policy.load_diffusion_state(diffusion.state_dict())
        return policy

    def load_diffusion_state(self, state: dict[str, Tensor]) -> None:
        """Load a :class:`DiffusionPolicy` state dict into the fine-tuned denoiser and its frozen copy."""
        self.diffusion.load_state_dict(state)
        if self.frozen is not None:
            self.frozen.load_state_dict(state)

    # ---- sampling ------------------------------------------------------------------------

    def _chain(self, obs: Tensor, x: Tensor, eta: float, min_std: float) -> tuple[Tensor, Tensor]:
        """The K-step DDIM chain from ``x``: (final unclipped state, chain ``[B, K + 1, act_dim]``)."""
        diffusion, frozen = self.diffusion, self.frozen

        def eps_fn(x: Tensor, k: int) -> Tensor:
            return (frozen if k in self._frozen_ks else diffusion).eps(obs, x, k)

        clip = 1.0 if diffusion.clip_x0 else None
        return gaussian_chain(eps_fn, diffusion.schedule, x, self.denoising_steps, eta, None, clip, min_std, True)

    @torch.no_grad()
    def explore(self, obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        obs = self.diffusion._check_obs(obs)
        x, chain = self._chain(
            obs, torch.randn(obs.shape[0], self.act_dim, device=obs.device, dtype=obs.dtype), self.eta, self.min_sampling_std
        )
        tail = chain[:, -(self.ft_denoising_steps + 1) :].contiguous()
        return self.to_env(x.clamp(-1.0, 1.0)), {"chain": tail, "chain_log_prob": self.step_log_prob(obs, tail)}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        obs = self.diffusion._check_obs(obs)
        draw = torch.zeros if deterministic else torch.randn
        eta, min_std = (0.0, 0.0) if deterministic else (self.eta, self.min_sampling_std)
        final, _ = self._chain(obs, draw(obs.shape[0], self.act_dim, device=obs.device, dtype=obs.dtype), eta, min_std)
        return self.to_env(final.clamp(-1.0, 1.0))

    # ---- the denoising-MDP likelihood ----------------------------------------------------

    def step_log_prob(self, obs: Tensor, tail: Tensor) -> Tensor:
        """``log N(x_{i+1}; mu_theta(x_i, k_i, s), max(std_i, min_logprob_std)^2)`` of each fine-tuned step,
        ``[B, K']``, summed over action dims (Ren et al. 2025, eq. 5), differentiable.

        ``tail`` is the stored ``[B, K' + 1, act_dim]`` end of the chain. The same Gaussian as
        :meth:`DiffusionPolicy.chain_log_prob` on the whole chain (DDIM with ``eta``), but only the
        K' fine-tuned steps go through the network, in one batched call.
        """
        B, S = tail.shape[0], self.ft_denoising_steps
        if tail.shape[1:] != (S + 1, self.act_dim) or obs.shape[0] != B:
            raise ValueError(f"chain must be [{obs.shape[0]}, K' + 1 = {S + 1}, {self.act_dim}], got {tuple(tail.shape)}")
        k, k_next = self._k.repeat(B), self._k_next.repeat(B)  # step-major within each sample
        x, x_next = tail[:, :-1].reshape(B * S, -1), tail[:, 1:].reshape(B * S, -1)
        diffusion, sched = self.diffusion, self.diffusion.schedule
        x0 = diffusion.predict_x0(x, k, obs.repeat_interleave(S, dim=0), clip=diffusion.clip_x0)
        a, a_next = sched.abar(k)[:, None].to(x.dtype), sched.abar(k_next)[:, None].to(x.dtype)
        mean, std = ddim_step(x, x0, a, a_next, self.eta)
        std = std.clamp(min=self.min_logprob_std).expand_as(x)
        z = (x_next - mean) / std
        return (-0.5 * z.square() - std.log() - _HALF_LOG_2PI).sum(-1).reshape(B, S)

    def log_ratio(self, obs: Tensor, actions: Tensor, stored: dict[str, Tensor]) -> Tensor:
        """One log-ratio per fine-tuned denoising step, ``[B, K']`` (the chain, not ``actions``, is scored)."""
        return self.step_log_prob(obs, _stored(stored, "chain")) - _stored(stored, "chain_log_prob")


class FlowPPOPolicy(_BoxMap):
    """A flow policy trained by PPO with FPO's ratio (McAllister et al. 2025, "Flow Matching Policy Gradients").

    ``explore`` integrates ``sample_steps`` Euler steps from fresh noise (the end point unclipped, as
    FPO's code: the env side clips it, and the ratio scores the action drawn), draws ``num_mc_samples``
    (N) pairs ``(tau, eps)`` per action (``tau`` from the sampler's grid ``{0, 1/S, ..., (S-1)/S}``
    when ``discretize_tau``, FPO's ``discretize_t_for_training``; else ``U[0, 1)``) and stores them
    with the old per-pair CFM losses ``[B, N]``. ``log_ratio = L_old - L_new`` at the same pairs:
    the mean over pairs, ``[B]`` (FPO's ``r = exp(mean L_old - mean L_new)``), or one per pair,
    ``[B, N]``, with ``per_pair_ratio`` (FPO++'s per-sample ratios). ``supervise="eps"`` is FPO's
    default ``u_but_supervise_as_eps``: the network predicts velocity, the loss is the MSE of the
    implied noise (``tau^2`` times the velocity MSE, :meth:`FlowPolicy.cfm_loss_per_sample`).

    ``act(deterministic=True)`` integrates from zero noise (FPO++'s zero-noise evaluation).
    ``flow_kwargs`` go to :class:`FlowPolicy` (``hidden``, ``activation``, ``time_dim``, ...).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        num_mc_samples: int = 8,
        sample_steps: int = 10,
        supervise: str = "eps",
        per_pair_ratio: bool = False,
        discretize_tau: bool = False,
        flow_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_mc_samples, bool) or not isinstance(num_mc_samples, int) or num_mc_samples < 1:
            raise ValueError(
                f"num_mc_samples (N, the (tau, eps) pairs per action) must be an int >= 1 (FPO: 8), got {num_mc_samples!r}"
            )
        if supervise not in ("velocity", "eps"):
            raise ValueError(f"supervise must be 'velocity' or 'eps' (FPO's default), got {supervise!r}")
        self.flow = FlowPolicy(obs_dim, act_dim, sample_steps=sample_steps, **(flow_kwargs or {}))
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self._register_bounds(self.act_dim, action_low, action_high)
        self.num_mc_samples, self.supervise = num_mc_samples, supervise
        self.per_pair_ratio, self.discretize_tau = bool(per_pair_ratio), bool(discretize_tau)

    @classmethod
    def wrap(cls, flow: FlowPolicy, action_low: Sequence[float], action_high: Sequence[float], **kwargs: Any) -> "FlowPPOPolicy":
        """A policy around ``flow``'s architecture and weights, e.g. a pretrained one; ``kwargs``'
        ``sample_steps`` (FPO's ``flow_steps``) replaces the flow's own."""
        args = _bound_kwargs(flow, FlowPolicy)
        obs_dim, act_dim = args.pop("obs_dim"), args.pop("act_dim")
        kwargs.setdefault("sample_steps", args.pop("sample_steps"))
        args.pop("sample_steps", None)
        policy = cls(obs_dim, act_dim, action_low, action_high, flow_kwargs=args, **kwargs)
        policy.flow.load_state_dict(flow.state_dict())
        return policy

    def _pairs(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        B, N, S = obs.shape[0], self.num_mc_samples, self.flow.default_steps
        kw = dict(device=obs.device, dtype=obs.dtype)
        if self.discretize_tau:  # the times the Euler sampler evaluates the velocity at
            tau = torch.randint(0, S, (B, N), device=obs.device).to(obs.dtype) / S
        else:
            tau = torch.rand((B, N), **kw)
        return tau, torch.randn((B, N, self.act_dim), **kw)

    def cfm_losses(self, obs: Tensor, actions: Tensor, tau: Tensor, eps: Tensor) -> Tensor:
        """The per-pair CFM losses ``[B, N]`` of env-space ``actions`` (mapped to ``[-1, 1]``), differentiable."""
        return self.flow.cfm_loss_per_sample(obs, self.from_env(actions), tau, eps, supervise=self.supervise)

    @torch.no_grad()
    def explore(self, obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        flow, obs = self.flow, self.flow._check_obs(obs)
        noise = torch.randn(obs.shape[0], self.act_dim, device=obs.device, dtype=obs.dtype)
        # the ODE's own end point, unclipped (the env clips): the CFM loss is then the drawn action's (as FPO's code)
        x = SOLVERS[flow.solver](lambda x, tau: flow.velocity(obs, x, tau), noise, flow.default_steps)
        actions = self.to_env(x)
        tau, eps = self._pairs(obs)
        # scored from the env-space action, as log_ratio will: the same float ops, so the ratio starts at exactly 1
        return actions, {"tau": tau, "eps": eps, "cfm_loss": self.cfm_losses(obs, actions, tau, eps)}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        return self.to_env(self.flow.act(obs, deterministic=deterministic))

    def log_ratio(self, obs: Tensor, actions: Tensor, stored: dict[str, Tensor]) -> Tensor:
        """``L_old - L_new`` at the stored pairs: ``[B]`` (mean over pairs) or ``[B, N]`` with ``per_pair_ratio``."""
        diff = _stored(stored, "cfm_loss") - self.cfm_losses(obs, actions, _stored(stored, "tau"), _stored(stored, "eps"))
        return diff if self.per_pair_ratio else diff.mean(-1)
