"""Data-parallel training under ``torchrun``: one process (rank) per device, each stepping its
share of the envs, gradients and statistics all-reduced so that every rank holds the same agent.

``torchrun --nproc-per-node N scripts/train_ppo.py ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init` reads them and joins the process group (gloo on the CPU, nccl on
CUDA with device ``cuda:LOCAL_RANK``). Without them (or with ``WORLD_SIZE=1``) nothing here is
initialised, :func:`current` is ``None`` and training is the single-process code path unchanged.

What a rank does differently, and why the update equals one process on the global batch:

- ``--num-envs`` is global: each rank steps ``num_envs / world_size`` copies, seeded with
  :meth:`World.rank_seed` so the ranks' envs (and their action noise) differ deterministically.
- A global minibatch ``j`` is the concatenation of every rank's minibatch ``j`` (each rank
  permutes its own samples). Local minibatches have equal sizes, so averaging the ranks' mean
  gradients (:meth:`World.average_gradients`, one flat all-reduce) is the gradient of the mean
  loss over the global minibatch; advantage normalisation uses the global minibatch's moments
  (:meth:`World.minibatch_moments`).
- Running normalisers (:class:`SyncedRunningMeanStd`) merge the batch gathered from every rank,
  so all ranks hold the statistics one process stepping all envs would.

Modules are broadcast from rank 0 after construction; evaluation, logging and writing
checkpoints are rank 0's (:attr:`World.is_main`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from policyopt.vecenvs.wrappers import RunningMeanStd

# Ranks > 0 offset their seeds by this (a prime far above the evaluation env's +10,000), so their
# envs and sampling differ from rank 0's and from other seeds' rank 0.
RANK_SEED_STRIDE = 1_000_003


def launched_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it; 1 when not launched by torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_supported(algo_cls: type, world_size: int) -> None:
    """A ``ValueError`` when ``algo_cls`` cannot train data-parallel (its ``supports_data_parallel`` is not set)."""
    if world_size > 1 and not getattr(algo_cls, "supports_data_parallel", False):
        raise ValueError(
            f"{algo_cls.__name__} does not support data-parallel training (launched by torchrun with WORLD_SIZE="
            f"{world_size}); run it as one process (python scripts/train_{algo_cls.__name__.lower()}.py ...), or train "
            "PPO, SPO, DPPO or FPO with torchrun --nproc-per-node N"
        )


def local_num_envs(num_envs: int, world_size: int) -> int:
    """Each process's share of the global ``num_envs``; a ``ValueError`` when it does not split evenly."""
    if num_envs % world_size == 0:
        return num_envs // world_size
    near = sorted({m for m in (world_size * (num_envs // world_size), world_size * (num_envs // world_size + 1)) if m > 0})
    raise ValueError(
        f"data-parallel training over {world_size} processes needs --num-envs divisible by {world_size}, got "
        f"{num_envs}: it is the global number of env copies, each process steps num_envs / {world_size} "
        f"(e.g. --num-envs {' or '.join(map(str, near))})"
    )


def check_minibatches(local_batch: int, num_minibatches: int, num_steps: int, local_envs: int) -> None:
    """A ``ValueError`` when a process's batch does not split into ``num_minibatches`` equal minibatches, which
    is what makes the mean of the ranks' gradients the global minibatch's."""
    if local_batch % num_minibatches == 0:
        return
    fits = [m for m in range(1, local_batch + 1) if local_batch % m == 0]
    near = sorted(
        {
            max((m for m in fits if m <= num_minibatches), default=1),
            min((m for m in fits if m >= num_minibatches), default=local_batch),
        }
    )
    raise ValueError(
        f"data-parallel training needs each process's batch, algo.num_steps * num_envs / world_size = {num_steps} * "
        f"{local_envs} = {local_batch}, divisible by algo.num_minibatches={num_minibatches}, so that every process's "
        f"minibatches have one size (e.g. --algo.num-minibatches {' or '.join(map(str, near))})"
    )


def check_launch(
    algo_cls: type, num_envs: int, num_steps: int | None = None, num_minibatches: int | None = None, world_size: int | None = None
) -> None:
    """Reject a torchrun launch that cannot train data-parallel, before the process group is joined
    (an error then would leave the other ranks waiting): an algorithm without data-parallel support,
    ``num_envs`` not divisible by the world size, or a per-rank batch that ``num_minibatches`` does not divide."""
    world_size = launched_world_size() if world_size is None else world_size
    if world_size <= 1:
        return
    check_supported(algo_cls, world_size)
    local_envs = local_num_envs(num_envs, world_size)
    if num_steps is not None and num_minibatches is not None:
        check_minibatches(num_steps * local_envs, num_minibatches, num_steps, local_envs)


@dataclass(frozen=True)
class World:
    """This process's place in the process group, and the collectives training uses."""

    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates, logs and writes checkpoints."""
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        """This rank's seed for its envs and its sampling: ``seed`` itself on rank 0."""
        return seed + RANK_SEED_STRIDE * self.rank

    def local_num_envs(self, num_envs: int) -> int:
        """This rank's share of the global ``num_envs``."""
        return local_num_envs(num_envs, self.size)

    # --- collectives ------------------------------------------------------------------------
    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` summed over ranks, in place."""
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    def sum_dict(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalar tensors summed over ranks in one all-reduce (float64, so sums of sums stay exact enough)."""
        if not values:
            return {}
        names = list(values)
        stacked = self.sum_(torch.stack([torch.as_tensor(values[k], device=self.device).double().reshape(()) for k in names]))
        return {k: v for k, v in zip(names, stacked.unbind())}

    def mean_dict(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalar tensors averaged over ranks in one all-reduce, as float32 like the metrics they are."""
        return {k: (v / self.size).float() for k, v in self.sum_dict(values).items()}

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Replace each gradient by its mean over ranks: one all-reduce of a flat buffer, not one per parameter.

        A parameter without a gradient is skipped; the ranks run the same graph, so it has none on any rank.
        """
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.sum_(flat).div_(self.size)
        for g, chunk in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(chunk.view_as(g))

    def minibatch_moments(self, advantages: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and (unbiased) std of each global minibatch's advantages, from every rank's shares
        ``advantages[j]``: one all-reduce for all the minibatches of an epoch."""
        local = torch.stack([torch.stack([a.double().sum(), a.double().square().sum()]) for a in advantages])
        s1, s2 = self.sum_(local).unbind(1)
        n = float(advantages[0].numel() * self.size)  # equal minibatches on every rank (check_minibatches)
        mean = s1 / n
        var = (s2 - s1 * mean).clamp_min(0.0) / max(n - 1.0, 1.0)
        return mean.float(), var.sqrt().float()

    def all_gather_cat(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's ``x`` (same shape on all), concatenated along dim 0 in rank order."""
        out = torch.empty((self.size * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # newer torch's name for it
        gather(out, x.contiguous())
        return out

    def broadcast_modules(self, modules: Iterable[nn.Module]) -> None:
        """Copy rank 0's parameters and buffers to every rank (once, after construction)."""
        with torch.no_grad():
            for module in modules:
                for t in list(module.parameters()) + list(module.buffers()):
                    dist.broadcast(t.data, src=0)

    def gather_objects(self, obj: Any) -> list[Any] | None:
        """Every rank's picklable ``obj`` on rank 0, in rank order (``None`` elsewhere)."""
        out = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        dist.barrier()


_WORLD: World | None = None


def current() -> World | None:
    """The process group this process joined with :func:`init`, or ``None`` (single-process training)."""
    return _WORLD


def init(device: str | torch.device = "cpu") -> World | None:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``) and return this rank's :class:`World`; ``None``, with nothing initialised, when there is
    one process. ``device`` is the run's: a CUDA one becomes ``cuda:LOCAL_RANK`` with backend nccl, the CPU gloo."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    size = launched_world_size()
    if size <= 1:
        return None
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={size} but {', '.join(missing)} unset: launch data-parallel training with "
            "torchrun --nproc-per-node N scripts/train_ppo.py ..."
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = torch.device(device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"data-parallel training runs on cpu (gloo) or cuda (nccl, one GPU per process), got --device {device}")
    dist.init_process_group(backend, rank=rank, world_size=size, **({"device_id": device} if backend == "nccl" else {}))
    _WORLD = World(rank=rank, size=size, local_rank=local_rank, device=device)
    return _WORLD


def shutdown(clean: bool = True) -> None:
    """Leave the process group, if :func:`init` joined one. ``clean`` (a normal exit) first waits for every
    rank: a rank that tears gloo down while a peer is still working (rank 0 evaluates and logs last) can
    abort at exit with "terminate called without an active exception". After an error it leaves at once,
    because the other ranks may never reach the barrier."""
    global _WORLD
    if _WORLD is not None:
        if clean:
            dist.barrier()
        dist.destroy_process_group()
        _WORLD = None


class SyncedRunningMeanStd(RunningMeanStd):
    """A :class:`RunningMeanStd` that merges every rank's batch, gathered in rank order, so all ranks hold
    the statistics of the global batch: bitwise those of one process updated with the concatenation.

    One all-gather per update; every rank must update at the same points with the same batch shape
    (and a mask on all ranks or none), which lock-step rollouts do.
    """

    def __init__(
        self, world: World, shape: Sequence[int] = (), device: str | torch.device = "cpu", epsilon: float = 1e-4
    ) -> None:
        super().__init__(shape, device=device, epsilon=epsilon)
        self.world = world

    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        x = self.world.all_gather_cat(x.detach())
        if mask is not None:
            mask = self.world.all_gather_cat(mask.to(x.device, torch.uint8)).bool()  # gloo gathers no bools
        super().update(x, mask)


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor in it moved to the CPU (what a checkpoint holds, and what pickles portably)."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
