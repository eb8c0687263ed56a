"""Flow policies: conditional flow matching on the linear path, sampled by an ODE solver (FQL, FPO)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from policyopt.nets.generative.base import GenerativePolicy, grad_mode
from policyopt.nets.generative.samplers import euler_sample, midpoint_sample
from policyopt.nets.generative.schedules import flow_interpolate, flow_velocity

SOLVERS = {"euler": euler_sample, "midpoint": midpoint_sample}


class FlowPolicy(GenerativePolicy):
    """``pi(a|s)`` as the flow of a velocity field ``v_theta(s, x_tau, tau)`` from ``N(0, I)`` at
    ``tau = 0`` to actions at ``tau = 1`` (Lipman et al. 2023; Park et al. 2025's FQL convention).

    Defaults: 10 Euler steps (FQL, FPO), a 3x256 Mish MLP, the final action clipped to ``[-1, 1]``.
    ``t`` in :meth:`corrupt` / :meth:`predict_x0` is the flow time ``tau`` in ``[0, 1]``. Time is
    continuous, so any step count ``>= 1`` is valid (there is no schedule to exceed).

    FPO hook: :meth:`cfm_loss_per_sample` evaluates the flow-matching loss at stored
    ``(tau, eps)`` pairs; FPO's ratio is ``exp(mean L_old - mean L_new)`` over them.
    """

    max_steps = None

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        solver: str = "euler",
        sample_steps: int = 10,
        backbone: str = "mlp",
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "mish",
        time_dim: int = 16,
        time_embedding: str = "sinusoidal",
    ) -> None:
        super().__init__(obs_dim, act_dim, backbone, hidden, activation, time_dim, time_embedding)
        self.solver = _check_solver(solver)
        self.default_steps = 1
        self.default_steps = self._steps(sample_steps)

    def velocity(self, obs: Tensor, x: Tensor, tau: float | Tensor) -> Tensor:
        """``v_theta(s, x_tau, tau)`` ``[B, act_dim]``."""
        return self.net(obs, x, self._time(tau, x))

    def corrupt(self, actions: Tensor, t: float | Tensor, noise: Tensor) -> Tensor:
        """The point ``(1 - tau) noise + tau actions`` of the linear path."""
        return flow_interpolate(noise, actions, t if isinstance(t, Tensor) else torch.tensor(float(t)))

    def predict_x0(self, noisy: Tensor, t: float | Tensor, obs: Tensor, clip: bool = False) -> Tensor:
        """The one-step clean-action estimate ``x_tau + (1 - tau) v_theta``: one Euler step to ``tau = 1``."""
        tau = self._time(t, noisy)[:, None]
        x1 = noisy + (1.0 - tau) * self.velocity(obs, noisy, tau[:, 0])
        return x1.clamp(-1.0, 1.0) if clip else x1

    def cfm_loss_per_sample(self, obs: Tensor, actions: Tensor, tau: Tensor, eps: Tensor, supervise: str = "velocity") -> Tensor:
        """The conditional flow-matching loss at given pairs, ``[B, N]`` (FPO, McAllister et al. 2025, eq. 7).

        ``tau`` ``[B, N]`` and ``eps`` ``[B, N, act_dim]``: ``N`` pairs per sample. The loss is
        ``mean_d (v_theta(s, x_tau, tau) - (a - eps))^2`` with ``x_tau = (1 - tau) eps + tau a``;
        ``supervise="eps"`` scores the implied noise ``x_tau - tau v_theta`` against ``eps`` instead,
        which is ``tau^2`` times the velocity loss (FPO's ``u_but_supervise_as_eps``). Differentiable.
        """
        B, d = actions.shape
        if tau.dim() != 2 or tau.shape[0] != B or tuple(eps.shape) != (B, tau.shape[1], d):
            raise ValueError(
                f"tau must be [B, N] and eps [B, N, act_dim] with B={B}, act_dim={d}; "
                f"got tau {tuple(tau.shape)}, eps {tuple(eps.shape)}"
            )
        if supervise not in ("velocity", "eps"):
            raise ValueError(f"supervise must be 'velocity' or 'eps', got {supervise!r}")
        N = tau.shape[1]
        a = actions[:, None, :].expand(B, N, d)
        x_tau = flow_interpolate(eps, a, tau)
        v = self.velocity(obs.repeat_interleave(N, dim=0), x_tau.reshape(B * N, d), tau.reshape(B * N)).reshape(B, N, d)
        err = (v - flow_velocity(eps, a)).square().mean(-1)
        return err * tau.square() if supervise == "eps" else err

    def bc_loss(self, obs: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Conditional flow matching with ``tau ~ U[0, 1)``, ``eps ~ N(0, I)`` (Lipman et al. 2023), one pair per sample."""
        B = actions.shape[0]
        tau = torch.rand((B, 1), generator=generator, device=actions.device, dtype=actions.dtype)
        eps = torch.randn((B, 1, self.act_dim), generator=generator, device=actions.device, dtype=actions.dtype)
        return self.cfm_loss_per_sample(obs, actions, tau, eps).mean()

    def sample(
        self,
        obs: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        grad: bool = False,
        *,
        solver: str | None = None,
    ) -> Tensor:
        """Actions ``[B, act_dim]`` in ``[-1, 1]``: the ODE from fresh noise, ``steps`` solver steps."""
        obs = self._check_obs(obs)
        return self._run(obs, self._initial_noise(obs, generator), self._steps(steps), solver, grad)

    def sample_from_noise(self, obs: Tensor, noise: Tensor, steps: int | None = None, grad: bool = False) -> Tensor:
        """The ODE's action for the initial ``noise`` (the flow is deterministic given its start)."""
        obs = self._check_obs(obs)
        return self._run(obs, self._check_noise(obs, noise), self._steps(steps), None, grad)

    def _run(self, obs: Tensor, x: Tensor, steps: int, solver: str | None, grad: bool) -> Tensor:
        solve = SOLVERS[self.solver if solver is None else _check_solver(solver)]
        with grad_mode(grad):
            return solve(lambda x, tau: self.velocity(obs, x, tau), x, steps).clamp(-1.0, 1.0)


def _check_solver(solver: str) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; use one of {sorted(SOLVERS)}")
    return solver
