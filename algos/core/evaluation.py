"""Policy evaluation on a vector env: the mean undiscounted return of whole episodes."""

from __future__ import annotations

from typing import Any, Callable

import torch
from gymnasium.vector import VectorEnv


@torch.no_grad()
def evaluate(
    act: Callable[[torch.Tensor], torch.Tensor],
    env: VectorEnv,
    num_episodes: int | None = None,
    seed: int | None = None,
    max_steps: int = 100_000,
) -> dict[str, Any]:
    """Run the first episode of each of ``env.num_envs`` copies to its end: the mean and std of the
    returns, the mean length, and each copy's return (``returns``, by copy).

    ``act`` maps raw observations to env actions. Taking exactly one episode per copy keeps
    the estimate unbiased (short episodes are not over-represented). ``num_episodes`` must
    equal ``env.num_envs`` if given; build the eval env with as many copies as episodes.
    """
    n = env.num_envs
    if num_episodes is not None and num_episodes != n:
        raise ValueError(f"evaluate runs one episode per env copy: num_episodes={num_episodes} but env.num_envs={n}")
    obs, _ = env.reset(seed=seed)
    device = obs.device
    returns = torch.zeros(n, dtype=torch.float64, device=device)
    lengths = torch.zeros(n, dtype=torch.int64, device=device)
    running = torch.ones(n, dtype=torch.bool, device=device)
    for step in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        returns += reward.to(torch.float64) * running
        lengths += running.long()
        running &= ~(terminated | truncated)
        if step % 16 == 15 and not bool(running.any()):  # one host sync every 16 steps
            break
    if bool(running.any()):
        raise RuntimeError(f"evaluation: {int(running.sum())} episodes did not end within {max_steps} steps")
    r = returns.cpu()
    return {
        "return_mean": float(r.mean()),
        "return_std": float(r.std(unbiased=False)),
        "length_mean": float(lengths.double().mean().cpu()),
        "episodes": n,
        "returns": r.tolist(),  # a bimodal policy (one failure mode among good episodes) shows here, not in the mean
    }
