"""Index samplers: which transitions of an :class:`~buffers.dataset.OfflineDataset` go into a batch.

Trajectory reweighting after Hong et al., ICLR 2023, "Harnessing Mixed Offline RL Datasets via
Trajectory Weighting", in the JaxCQL / IQL-codebase form. Each episode ``i`` gets a mass ``q_i``;
a batch draws B episodes from the masses, then one step uniformly inside each, so the
probability of a transition ``t`` is ``q_{i(t)} / |tau_{i(t)}|``:

- ``uniform``: every transition equally likely (``q_i ∝ |tau_i|``);
- ``rw`` (return-weighted): ``q_i ∝ |tau_i| exp(Ĝ_i / α)``, ``Ĝ`` the returns min-max normalised over episodes;
- ``aw`` (advantage-weighted): as ``rw`` with ``Â``, the min-max normalised ``A_i = G_i - V̂(s0_i)``,
  ``V̂`` the least-squares affine fit from initial observations to returns;
- ``topk``: uniform over the transitions of the ``max(1, int(fraction E))`` best episodes by return.

These are not diffusion samplers. Sampling runs on the dataset's device from the sampler's own
``torch.Generator``, with no host sync and no pre-drawn pool of indices.
"""

from __future__ import annotations

import numbers
import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from policyopt.buffers.dataset import OfflineDataset

SAMPLERS = ("uniform", "rw", "aw", "topk")
DEFAULT_TEMPERATURE = 0.1  # Hong et al. 2023, α for RW/AW
DEFAULT_FRACTION = 0.1  # Hong et al. 2023, top-10% baseline


def _batch_size(batch_size: Any) -> int:
    try:
        b = -1 if isinstance(batch_size, bool) else operator.index(batch_size)  # an int or a numpy integer
    except TypeError:
        b = -1
    if b <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return b


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_params(name: str, temperature: Any, fraction: Any) -> tuple[float | None, float | None]:
    """The (temperature, fraction) that ``name`` takes, with defaults filled; ValueError for the rest."""
    if temperature is not None and name not in ("rw", "aw"):
        raise ValueError(f"temperature={temperature!r} is only for the 'rw' and 'aw' samplers, not {name!r}; leave it None")
    if fraction is not None and name != "topk":
        raise ValueError(f"fraction={fraction!r} is only for the 'topk' sampler, not {name!r}; leave it None")
    if name in ("rw", "aw"):
        temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
        if not _is_number(temperature) or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0 (float('inf') for uniform), got {temperature!r}")
        return float(temperature), None
    if name == "topk":
        fraction = DEFAULT_FRACTION if fraction is None else fraction
        if not _is_number(fraction) or not 0 < fraction <= 1:
            raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
        return None, float(fraction)
    return None, None


def _minmax(x: Tensor, tol: float = 0.0) -> Tensor:
    """``(x - min) / (max - min)``; all zeros (hence uniform weights) when ``max - min <= tol``."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if bool(hi - lo > tol) else torch.zeros_like(x)


def episode_advantages(dataset: OfflineDataset) -> Tensor:
    """``A_i = G_i - V̂(s0_i)``, float64 ``[E]``: V̂ is ordinary least squares with intercept from the
    initial observations to the returns (Hong et al. 2023, AW), min-norm when underdetermined."""
    x = dataset.initial_observations.double().cpu()
    g = dataset.episode_returns.double().cpu()
    # centred features plus an intercept column: the same fit as OLS with intercept, better conditioned
    x = torch.cat([x - x.mean(0), torch.ones(len(x), 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(x, g[:, None], driver="gelsd").solution
    return (g - (x @ coef)[:, 0]).to(dataset.device)


def trajectory_masses(
    dataset: OfflineDataset, name: str, temperature: float | None = None, fraction: float | None = None
) -> Tensor:
    """Unnormalised float64 episode masses ``q [E]`` of sampler ``name`` (see the module docstring)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; available: {', '.join(SAMPLERS)}")
    temperature, fraction = _check_params(name, temperature, fraction)
    lengths = dataset.episode_lengths.double()
    if name == "uniform":
        return lengths
    returns = dataset.episode_returns.double()
    if name == "topk":  # Hong et al. 2023, top-x% baseline: descending return, ties by episode index
        k = max(1, int(fraction * dataset.num_episodes + 1e-9))  # 0.29 * 100 is 28.999...: still 29
        keep = torch.sort(-returns, stable=True).indices[:k]
        return torch.zeros_like(lengths).index_copy_(0, keep, lengths[keep])
    if name == "rw":
        score = _minmax(returns)
    else:  # a perfect fit leaves float64 round-off (~1e-15 |G|) in A, which min-max would blow up to [0, 1]
        score = _minmax(episode_advantages(dataset), tol=1e-9 * float(returns.abs().max()))
    logits = score / temperature + lengths.log()  # Hong et al. 2023, eq. for RW/AW: |τ_i| exp(Ĝ_i / α)
    return torch.exp(logits - logits.max())


class IndexSampler:
    """Draws batches of transition indices from an :class:`OfflineDataset`, on its device.

    ``sample(B)`` is ``dataset.batch(sample_indices(B))``. ``transition_probs()`` ``[N]`` and
    ``trajectory_probs()`` ``[E]`` are the exact float64 sampling distributions. The random
    state lives in the sampler's own ``torch.Generator`` (seeded by ``seed``); ``state_dict()`` /
    ``load_state_dict()`` save and restore it, so a resumed run draws the same next batches.
    """

    name: str = ""

    def __init__(self, dataset: OfflineDataset, *, seed: int = 0) -> None:
        self.dataset = dataset
        self.device = dataset.device
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)

    def params(self) -> dict[str, float | None]:
        return {}

    def sample_indices(self, batch_size: int) -> Tensor:
        raise NotImplementedError

    def sample(self, batch_size: int) -> dict[str, Tensor]:
        return self.dataset.batch(self.sample_indices(batch_size))

    def trajectory_probs(self) -> Tensor:
        raise NotImplementedError

    def transition_probs(self) -> Tensor:
        d = self.dataset
        return (self.trajectory_probs() / d.episode_lengths.double())[d.episode_index]

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params(),
            "num_transitions": self.dataset.num_transitions,
            "num_episodes": self.dataset.num_episodes,
            "seed": self.seed,
            "rng_state": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        for key in ("name", "params", "num_transitions", "num_episodes"):
            if state.get(key) != mine[key]:
                raise ValueError(
                    f"sampler state_dict does not match this sampler: {key} is {state.get(key)!r} in the "
                    f"state, {mine[key]!r} here"
                )
        self.generator.set_state(state["rng_state"].cpu())

    def __repr__(self) -> str:
        params = "".join(f", {k}={v}" for k, v in self.params().items())
        return f"{type(self).__name__}({self.name!r}{params}, seed={self.seed})"


class UniformSampler(IndexSampler):
    """Every transition equally likely: ``torch.randint(N)``."""

    name = "uniform"

    def sample_indices(self, batch_size: int) -> Tensor:
        n = self.dataset.num_transitions
        return torch.randint(n, (_batch_size(batch_size),), generator=self.generator, device=self.device)

    def trajectory_probs(self) -> Tensor:
        lengths = self.dataset.episode_lengths.double()
        return lengths / lengths.sum()


class TrajectoryWeightedSampler(IndexSampler):
    """An episode drawn from trajectory masses (``rw``, ``aw`` or ``topk``), then a step uniformly inside it.

    The episode comes from ``searchsorted(cdf, u, right=True)`` on the float64 normalised cumulative
    masses, which never lands on a zero-mass episode (``cdf`` reaches exactly 1 at the last
    positive one and ``u < 1``); the step is ``start + floor(u2 * length)``.
    """

    def __init__(
        self,
        dataset: OfflineDataset,
        name: str = "rw",
        *,
        temperature: float | None = None,
        fraction: float | None = None,
        seed: int = 0,
    ) -> None:
        if name not in ("rw", "aw", "topk"):
            raise ValueError(f"TrajectoryWeightedSampler takes name 'rw', 'aw' or 'topk', got {name!r}")
        super().__init__(dataset, seed=seed)
        self.name = name
        self.temperature, self.fraction = _check_params(name, temperature, fraction)
        mass = trajectory_masses(dataset, name, self.temperature, self.fraction)
        self._probs = mass / mass.sum()
        cum = mass.cumsum(0)
        self._cdf = cum / cum[-1]
        self._last_episode = dataset.num_episodes - 1
        # (start, length, length - 1) per episode, float64 (exact for integers below 2**53): one gather per batch
        lengths = dataset.episode_lengths
        self._episodes = torch.stack([dataset.episode_starts, lengths, lengths - 1], 1).double()

    def params(self) -> dict[str, float | None]:
        return {"temperature": self.temperature} if self.name in ("rw", "aw") else {"fraction": self.fraction}

    def sample_indices(self, batch_size: int) -> Tensor:
        u = torch.rand(2, _batch_size(batch_size), dtype=torch.float64, generator=self.generator, device=self.device)
        return self._indices(u)

    def _indices(self, u: Tensor) -> Tensor:
        """Transition indices from uniforms ``u [2, B]`` in [0, 1): row 0 picks the episode, row 1 the step."""
        ep = torch.searchsorted(self._cdf, u[0], right=True).clamp_(max=self._last_episode)
        start, length, last = self._episodes[ep].unbind(1)
        return (u[1] * length).floor_().clamp_(max=last).add_(start).long()

    def trajectory_probs(self) -> Tensor:
        return self._probs


def make_sampler(
    dataset: OfflineDataset, name: str, *, temperature: float | None = None, fraction: float | None = None, seed: int = 0
) -> IndexSampler:
    """The index sampler ``name`` (one of :data:`SAMPLERS`, any case) over ``dataset``.

    ``temperature`` (α, default 0.1, > 0, ``inf`` for uniform) is for ``rw``/``aw`` only;
    ``fraction`` (default 0.1, in (0, 1]) for ``topk`` only.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; available: {', '.join(SAMPLERS)}")
    _check_params(key, temperature, fraction)
    if key == "uniform":
        return UniformSampler(dataset, seed=seed)
    return TrajectoryWeightedSampler(dataset, key, temperature=temperature, fraction=fraction, seed=seed)
