"""The one base under every algorithm family: the learn loop's cadence, the NaN guard,
acting, evaluation and checkpoints.

A family (on-policy, off-policy, offline) says what one iteration is, in :meth:`Algorithm.iterate`:
a rollout and its update, an env step and its gradient steps, a batch of gradient steps. It
returns how many steps it advanced and its metrics as device tensors. The base runs
everything around it: evaluation, logging and checkpoints on their own cadences, and the
NaN guard, which checks the metrics accumulated since the last log in one host sync rather
than one per iteration, so an off-policy learner that updates every env step never waits
for the host.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from policyopt.algos.core.checkpoint import (
    atomic_save,
    check_spaces,
    config_from_dict,
    describe_space,
    load_checkpoint,
    space_from_description,
)
from policyopt.algos.core.evaluation import evaluate
from policyopt.algos.core.logger import RunLogger
from policyopt.algos.core.presets import preset
from policyopt.nets.spec import build_module, class_path, current_class_path, module_spec, trusted_classes as trusted
from policyopt.vecenvs import TorchVecEnv, check_device

# Metrics an iteration reports as sums over the episodes it finished, not as per-iteration values.
EPISODE_SUMS = ("episodes", "return_sum", "length_sum")


def episode_sums(info: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The :data:`EPISODE_SUMS` of one env step, from ``RecordEpisodeStatistics``'s info (no host sync)."""
    done = info["_episode"]
    return {
        "episodes": done.sum(),
        "return_sum": torch.where(done, info["episode"]["r"], 0.0).sum(),
        "length_sum": torch.where(done, info["episode"]["l"], 0).sum(),
    }


class TrainingDivergedError(RuntimeError):
    """Raised when a loss, a parameter or an optimiser's state becomes NaN or infinite; no checkpoint is written after it."""


@dataclass
class AlgorithmConfig:
    """Settings every algorithm has. The device is the env's (or, offline, the one passed in)."""

    seed: int = 0
    """seeds torch (network init, action sampling); the env's randomness comes from the env's own seed"""
    compile: bool = False
    """torch.compile the update step (CUDA: also captured in CUDA graphs); compile time is paid once per run"""

    @classmethod
    def preset(cls, name: str) -> "AlgorithmConfig":
        """A named hyperparameter set from :mod:`policyopt.algos.core.presets` (e.g. ``PPOConfig.preset("mujoco")``)."""
        return preset(cls, name)


class Algorithm:
    """Base of every algorithm. Families implement :meth:`iterate` and :meth:`_act`; algorithms
    build their networks, register them in :meth:`modules` and their optimisers in ``self.optimizers``.

    ``self.policy`` is the module that acts. When it records its constructor
    (:class:`nets.spec.RecordsInit`, which every policy in ``nets`` does), checkpoints record its
    class and arguments, so :meth:`load` rebuilds a custom ``policy=`` too.
    """

    config_class: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    #: log (and run the NaN guard) every this many steps by default; 0: after every iteration
    default_log_every: ClassVar[int] = 0
    #: what ``global_step`` counts, and what one iteration is, for messages
    step_unit: ClassVar[str] = "env steps"
    iteration_name: ClassVar[str] = "iterations of"
    #: the training CLI's default --num-envs, and what the number means to the family
    default_num_envs: ClassVar[int] = 1
    #: the training CLI takes --dataset (offline families) and builds no training env
    trains_on_dataset: ClassVar[bool] = False
    num_envs_help: ClassVar[str] = "each iteration steps every copy once"

    def __init__(
        self, config: AlgorithmConfig | None, device: str | torch.device, observation_space: gym.Space, action_space: gym.Space
    ) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(self.config).__name__}")
        self.device = check_device(device)
        self.observation_space, self.action_space = observation_space, action_space
        torch.manual_seed(self.config.seed)
        self.global_step = 0  # env steps (offline: gradient steps)
        self.num_updates = 0  # iterations
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.policy: nn.Module
        self._compiled_steps: list[CompiledStep] = []
        # metrics accumulated on the device since the last record, and how many iterations each has
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_counts: dict[str, int] = {}

    # --- what families and algorithms provide ----------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """The networks by name, as checkpoints store them (``policy`` first)."""
        raise NotImplementedError

    def iterate(self, progress: float) -> tuple[int, dict[str, torch.Tensor]]:
        """One iteration; ``progress`` in [0, 1) drives schedules. Returns (steps advanced, device metrics)."""
        raise NotImplementedError

    @property
    def steps_per_iteration(self) -> int:
        """Steps one iteration advances; ``learn`` runs whole iterations."""
        raise NotImplementedError

    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Env actions for a batch of raw observations on the device."""
        raise NotImplementedError

    def budget_note(self, planned: int) -> str | None:
        """What a run that stops at ``planned`` steps would silently not do, said as a warning by :meth:`learn`
        (off-policy: a run that ends before learning starts); None when nothing."""
        return None

    # --- compiled steps and optimisers ------------------------------------------------------
    def compiled(self, step: Callable[..., Any]) -> Callable[..., Any]:
        """``step`` under ``torch.compile`` when ``config.compile`` (on CUDA: CUDA graphs too), else itself."""
        if not self.config.compile:
            return step
        compiled = CompiledStep(step, self.device)
        self._compiled_steps.append(compiled)
        return compiled

    @property
    def compile_seconds(self) -> float:
        """Seconds spent on the calls that compiled a step (each input signature's first), so far."""
        return sum(c.compile_seconds for c in self._compiled_steps)

    def adam(self, params: Any, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
        """Adam as one fused kernel (CPU and CUDA), or capturable for CUDA graphs when compiled on CUDA."""
        if self.config.compile and self.device.type == "cuda":
            return torch.optim.Adam(params, lr=lr, eps=eps, capturable=True, foreach=True)
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)

    # --- the training env, for families that train on one ----------------------------------
    def _reset_if_needed(self) -> torch.Tensor:
        """The observation the next iteration starts from, resetting the env on first use."""
        if self._obs is None:
            self._obs, _ = self.env.reset()  # the env's own seed (vecenvs.make(seed=...)) decides its randomness
        return self._obs

    def _env_state(self) -> dict[str, Any]:
        """The training env's own state, the observation the next iteration starts from, and the number of copies."""
        return {"env": self.env.state_dict(), "obs": self._obs, "num_envs": self.num_envs}

    def _load_env_state(self, state: dict[str, Any]) -> bool:
        """Restore :meth:`_env_state` where the env can take it: a native tensor env with as many
        copies (exact resume). Otherwise the next iteration resets the env. Returns whether it was restored."""
        exact = state["num_envs"] == self.num_envs and isinstance(self.env.unwrapped, TorchVecEnv)
        if exact:
            self.env.load_state_dict(state["env"])
        self._obs = state["obs"].to(self.device) if exact and state["obs"] is not None else None
        return exact

    def extra_state(self) -> dict[str, Any]:
        """State outside modules and optimisers that a resume needs (SAC's log_alpha, env state, buffers)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    # --- the loop --------------------------------------------------------------------------
    def learn(
        self,
        total_steps: int,
        logger: RunLogger | None = None,
        eval_env: gym.vector.VectorEnv | None = None,
        eval_every: int = 0,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 0,
        progress: bool = True,
        callback: Callable[["Algorithm", dict[str, float]], bool | None] | None = None,
        eval_seed: int | None = None,
        log_every: int | None = None,
    ) -> "Algorithm":
        """Train until ``global_step`` reaches ``total_steps``.

        Calling it again, or after :meth:`load`, continues where the last call stopped.
        Evaluation (every ``eval_every`` steps on ``eval_env``, a raw env: the agent's own
        normalisation is applied and frozen) and checkpoints (every ``checkpoint_every`` steps)
        are optional. ``eval_seed`` reseeds ``eval_env`` before every evaluation, so each point
        of the curve sees the same initial states and a resumed run evaluates exactly as an
        uninterrupted one (the training scripts pass their seed + 10,000); ``None`` respects the
        eval env's own seed. A record of metrics is logged every ``log_every`` steps (``None``:
        the family's default; 0: every iteration), averaged over the iterations since the last
        one, and ``callback(agent, record)`` sees each record and stops training by returning
        ``False``. The NaN guard runs with every record and before every checkpoint: a NaN or
        inf raises :class:`TrainingDivergedError` and no checkpoint is written after it, so the
        last good one stays intact. Training runs whole iterations, so it stops at the first
        multiple of :attr:`steps_per_iteration` at or above ``total_steps``.
        """
        if not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps must be a non-negative int of steps, got {total_steps!r}")
        log_every = self.default_log_every if log_every is None else log_every
        if log_every < 0:
            raise ValueError(f"log_every must be >= 0 (0: every iteration), got {log_every}")
        per_iter = self.steps_per_iteration
        planned = self.global_step + max(0, math.ceil((total_steps - self.global_step) / per_iter)) * per_iter
        bar = tqdm(total=planned, initial=self.global_step, unit="step", disable=not progress, dynamic_ncols=True)
        write = bar.write if progress else (lambda line: print(line, flush=True))
        if planned != max(total_steps, self.global_step):  # said with or without the progress bar
            write(
                f"{type(self).__name__}: training to {planned:,} {self.step_unit}: total_steps={total_steps:,} "
                f"rounded up to whole {self.iteration_name} {per_iter:,}"
            )
        if (note := self.budget_note(planned)) is not None:
            warnings.warn(note, RuntimeWarning, stacklevel=2)
        if eval_env is not None and eval_every and self.global_step == 0:
            # the untrained policy's return: the baseline every learning curve starts from
            record = self._evaluate_and_report(eval_env, write, eval_seed)
            if logger is not None:
                logger.log(0, record)
        self._pending, self._pending_counts = {}, {}
        window_start, window_steps, recent_return = time.perf_counter(), 0, float("nan")
        try:
            while self.global_step < total_steps:
                steps, metrics = self.iterate(self.global_step / total_steps)
                self.global_step += steps
                self.num_updates += 1
                window_steps += steps
                self._accumulate(metrics)
                evaluate_now = eval_env is not None and eval_every and self._crossed(eval_every, steps)
                save_now = checkpoint_path is not None and checkpoint_every and self._crossed(checkpoint_every, steps)
                log_now = log_every == 0 or self._crossed(log_every, steps) or self.global_step >= total_steps
                if not (log_now or evaluate_now or save_now):
                    continue
                record = self._flush_checked()  # the NaN guard: before anything is evaluated, logged or saved
                record["train/sps"] = window_steps / (time.perf_counter() - window_start)
                if "charts/episodic_return" in record:
                    recent_return = record["charts/episodic_return"]
                if evaluate_now:
                    record.update(self._evaluate_and_report(eval_env, write, eval_seed))
                if logger is not None:
                    logger.log(self.global_step, record)
                if save_now:
                    self._save_checked(checkpoint_path)
                bar.update(window_steps)
                bar.set_postfix(sps=f"{record['train/sps']:,.0f}", ret=f"{recent_return:.1f}", refresh=False)
                window_start, window_steps = time.perf_counter(), 0
                if callback is not None and callback(self, record) is False:
                    break
            if checkpoint_path is not None:
                self._flush_checked()
                self._save_checked(checkpoint_path)
        except TrainingDivergedError as e:  # say truthfully what the run directory still holds
            raise TrainingDivergedError(f"{e}; {_checkpoint_note(checkpoint_path)}") from None
        finally:
            bar.close()
        return self

    def _save_checked(self, path: str | Path) -> None:
        """:meth:`save`, after checking the optimisers' state too: an inf in Adam's second moment leaves
        the parameters finite while every later update is wrong, and must not reach a checkpoint."""
        tensors = [
            (name, key, t)
            for name, opt in self.optimizers.items()
            for group in opt.state.values()
            for key, t in group.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point()
        ]
        if tensors:
            finite = torch.stack([t.isfinite().all() for _, _, t in tensors]).tolist()
            bad = sorted({f"{name}.{key}" for (name, key, _), ok in zip(tensors, finite) if not ok})
            if bad:
                raise TrainingDivergedError(
                    f"{type(self).__name__}: NaN or inf in the optimiser state ({', '.join(bad)}) "
                    f"by update {self.num_updates} (step {self.global_step}); training stopped before "
                    "writing it to a checkpoint"
                )
        self.save(path)

    def _accumulate(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            v = torch.as_tensor(v, device=self.device).detach().float().reshape(())
            # a fresh tensor either way: a CUDA-graph output is overwritten by the graph's next replay
            self._pending[k] = self._pending[k] + v if k in self._pending else v.clone()
            self._pending_counts[k] = self._pending_counts.get(k, 0) + 1

    def _flush_checked(self) -> dict[str, float]:
        """One host sync: the accumulated metrics' means and a NaN/inf check of them and of every parameter."""
        pending, counts = self._pending, self._pending_counts
        names = list(pending)
        params = [p for m in self.modules().values() for p in m.parameters()]
        params_ok = torch.stack([p.isfinite().all() for p in params]).all() if params else torch.ones((), dtype=torch.bool)
        values = torch.stack([pending[k] for k in names] + [params_ok.float().to(self.device)]).tolist()
        bad = [k for k, v in zip(names, values[:-1]) if not math.isfinite(v)]
        if bad or values[-1] != 1.0:
            what = f"the {', '.join(bad)} of the update" if bad else "the network parameters"
            raise TrainingDivergedError(
                f"{type(self).__name__}: NaN or inf in {what} by update {self.num_updates} (step {self.global_step}); "
                "training stopped and no checkpoint was written after it"
            )
        sums = dict(zip(names, values[:-1]))
        self._pending, self._pending_counts = {}, {}
        record = {f"train/{k}": sums[k] / counts[k] for k in names if k not in EPISODE_SUMS}
        if sums.get("episodes", 0) > 0:
            record["charts/episodic_return"] = sums["return_sum"] / sums["episodes"]
            record["charts/episodic_length"] = sums["length_sum"] / sums["episodes"]
        return record

    def _crossed(self, every: int, advanced: int) -> bool:
        return self.global_step // every > (self.global_step - advanced) // every

    def _evaluate_and_report(
        self, eval_env: gym.vector.VectorEnv, write: Callable[[str], None], seed: int | None
    ) -> dict[str, float]:
        result = self.evaluate(eval_env, seed=seed)
        write(f"step {self.global_step:>10,}: eval return {result['return_mean']:9.1f} ± {result['return_std']:.1f}")
        return {"eval/return": result["return_mean"], "eval/return_std": result["return_std"]}

    # --- acting and evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor | np.ndarray, deterministic: bool = False) -> torch.Tensor | np.ndarray:
        """Env-ready actions for raw observations (normalised internally), like SB3's ``predict``.

        ``obs`` is a batch ``[B, obs_dim]`` or one observation ``[obs_dim]``, as a torch tensor
        or a NumPy array; the actions come back in the same form (NumPy in, NumPy out; one
        observation, one action), within the action space's bounds.
        """
        expected = tuple(self.observation_space.shape)
        as_numpy = isinstance(obs, np.ndarray)
        if (
            not (as_numpy or isinstance(obs, torch.Tensor))
            or tuple(obs.shape[-len(expected) :]) != expected
            or obs.ndim not in (1, 2)
        ):
            got = f"shape {tuple(obs.shape)}" if hasattr(obs, "shape") else type(obs).__name__
            raise ValueError(
                f"act expects observations of shape [B, {expected[0]}] or [{expected[0]}], as a torch "
                f"tensor or NumPy array; got {got}"
            )
        single = obs.ndim == 1
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        action = self._act(obs[None] if single else obs, deterministic)
        action = action[0] if single else action
        return action.cpu().numpy() if as_numpy else action

    def check_env(self, env: gym.vector.VectorEnv) -> None:
        """Raise ``ValueError`` naming both spaces when ``env`` does not match the agent's spaces."""
        check_spaces(self.observation_space, self.action_space, env, f"this {type(self).__name__} agent")

    #: evaluation acts with ``act(obs, deterministic=evaluate_deterministic)``
    evaluate_deterministic: bool = True

    def evaluate(self, env: gym.vector.VectorEnv, seed: int | None = None, deterministic: bool | None = None) -> dict[str, Any]:
        """The policy's return, one episode per copy of ``env`` (a raw env; normalisation is frozen),
        acting deterministically unless :attr:`evaluate_deterministic` (or ``deterministic``) says otherwise.

        ``seed=None`` respects the env's own seed (the one given to ``vecenvs.make``, continued
        from its last episode); an int reseeds the env first.
        """
        self.check_env(env)
        deterministic = self.evaluate_deterministic if deterministic is None else deterministic
        return evaluate(lambda o: self.act(o, deterministic=deterministic), env, seed=seed)

    # --- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to evaluate or to continue exactly: networks, optimisers, the
        policy's spec, the family's extra state, RNG states and counters."""
        return {
            "algo": type(self).__name__,
            "config": dataclasses.asdict(self.config),
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
            "policy_spec": module_spec(self.policy),
            "policy_class": class_path(self.policy),
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "extra": self.extra_state(),
            "global_step": self.global_step,
            "num_updates": self.num_updates,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore all of :meth:`state_dict` (an exact resume)."""
        if state["algo"] != type(self).__name__:
            raise ValueError(f"checkpoint was written by {state['algo']}, not {type(self).__name__}")
        self._load_modules(state, list(self.modules()))
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.global_step, self.num_updates = state["global_step"], state["num_updates"]
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.load_extra_state(state["extra"])

    def _load_modules(self, state: dict[str, Any], names: Sequence[str]) -> None:
        mine = self.modules()
        unknown = [n for n in names if n not in mine or n not in state["modules"]]
        if unknown:
            raise KeyError(
                f"unknown module(s) {unknown}: {type(self).__name__} has {list(mine)}, the checkpoint "
                f"({state['algo']}) has {list(state['modules'])}"
            )
        for n in names:
            try:
                mine[n].load_state_dict(state["modules"][n])
            except RuntimeError as e:
                raise ValueError(
                    f"checkpoint module {n!r} ({state['algo']}) does not fit this {type(self).__name__}'s: {e}"
                ) from e

    def load_modules(self, path: str | Path, modules: Sequence[str] = ("policy",)) -> "Algorithm":
        """Copy only the named modules' weights from a checkpoint, of this or another algorithm.

        Everything else (optimisers, counters, other networks) stays as it is: this is how an
        offline actor starts online fine-tuning. Unknown names raise ``KeyError`` listing both
        sides' module names.
        """
        state = load_checkpoint(path, map_location="cpu")
        self._load_modules(state, list(modules))
        return self

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (temporary file + rename)."""
        return atomic_save(self.state_dict(), path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: gym.vector.VectorEnv | None = None,
        device: str | torch.device | None = None,
        modules: Sequence[str] | None = None,
        policy: nn.Module | None = None,
        trusted_classes: Sequence[type | str] = (),
    ) -> "Algorithm":
        """Rebuild an agent from a checkpoint, custom policy included.

        With ``env`` it can keep training (exactly, for native tensor envs with the same number
        of copies); without one it is ready for :meth:`act` on raw observations, on ``device``.
        ``modules=["policy", ...]`` loads only those networks into a fresh agent (no optimiser,
        counter or RNG state).

        Loading runs no code from the file: it is read with ``torch.load(weights_only=True)``, and
        the policy's recorded class is rebuilt only when it is one of the library's own. A policy of
        your own class is rebuilt when you allow it, with ``trusted_classes=[MyPolicy]`` or a module
        prefix (``trusted_classes=["mylab.policies"]``), or you build it yourself and pass ``policy=``.
        """
        with trusted(trusted_classes):
            return cls._load(path, env, device, modules, policy)

    @classmethod
    def _load(
        cls,
        path: str | Path,
        env: Any,
        device: str | torch.device | None,
        modules: Sequence[str] | None,
        policy: nn.Module | None,
    ) -> "Algorithm":
        # Loaded on the CPU: RNG states must stay CPU byte tensors; the modules' load_state_dict
        # moves everything else to the agent's device.
        state = load_checkpoint(path, map_location="cpu")
        if state["algo"] != cls.__name__:
            raise ValueError(f"{path} holds a {state['algo']} checkpoint, not {cls.__name__}")
        config = config_from_dict(cls.config_class, state["config"], f"{path}'s config")
        source = cls._source_for_load(state, Path(path), env, device)
        if policy is None and state.get("policy_spec") is not None:
            policy = build_module(state["policy_spec"])
        agent = cls(source, config, policy=policy)
        recorded = state.get("policy_class") and current_class_path(state["policy_class"])
        if policy is None and recorded is not None and recorded != class_path(agent.policy):
            raise ValueError(
                f"{path} holds a {recorded} policy, which did not record how to rebuild it (its class is "
                f"in __main__, or not a nets.RecordsInit); pass it in: {cls.__name__}.load(path, policy=...)"
            )
        if modules is None:
            agent.load_state_dict(state)
        else:
            agent._load_modules(state, list(modules))
        return agent

    @classmethod
    def _source_for_load(cls, state: dict[str, Any], path: Path, env: Any, device: str | torch.device | None) -> Any:
        """What :meth:`load` builds the agent on: ``env`` after checking its spaces, or a stand-in
        with the checkpoint's spaces (offline families: the dataset)."""
        obs_space, act_space = space_from_description(state["observation_space"]), space_from_description(state["action_space"])
        if env is None:
            return SpacesOnly(obs_space, act_space, check_device(device or "cpu"))
        # before anything is built, so a wrong env gets the space mismatch, not a policy error
        check_spaces(obs_space, act_space, env, f"checkpoint {path}")
        return env


def _checkpoint_note(path: str | Path | None) -> str:
    if path is None:
        return "this run writes no checkpoint"
    if not Path(path).is_file():
        return f"no checkpoint had been written yet, so there is none at {path} (the training CLI restarts such a run directory)"
    return f"the last good checkpoint, {path}, is intact"


class CompiledStep:
    """A step function under ``torch.compile``, timing the calls that compile it.

    Shapes are static (``dynamic=False``): a step sees one batch shape, or a few, each compiled
    once. Random ops draw from torch's own generator, as in eager mode (``fallback_random``),
    so a compiled run takes the same random numbers as an eager one and a seed still fixes it.
    On CUDA the step is replayed as a CUDA graph (``triton.cudagraphs``, what mode
    ``reduce-overhead`` sets).
    """

    def __init__(self, step: Callable[..., Any], device: torch.device) -> None:
        self.step = step
        self.device = device
        options = {"fallback_random": True, **({"triton.cudagraphs": True} if device.type == "cuda" else {})}
        self._compiled = torch.compile(step, dynamic=False, options=options)
        self._signatures: set[tuple] = set()
        self.compile_seconds = 0.0

    def __call__(self, *args: Any) -> Any:
        signature = tuple(_signature(a) for a in args)
        if signature in self._signatures:
            return self._compiled(*args)
        t0 = time.perf_counter()
        try:
            out = self._compiled(*args)
        except Exception as e:  # no C++ compiler, an unsupported op...: the run goes on eagerly
            if self._compiled is self.step:
                raise
            warnings.warn(
                f"torch.compile failed for {getattr(self.step, '__qualname__', self.step)}; running it eagerly "
                f"(set compile=False to skip the attempt): {type(e).__name__}: {str(e)[:300]}",
                RuntimeWarning,
            )
            self._compiled = self.step
            out = self.step(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.compile_seconds += time.perf_counter() - t0
        self._signatures.add(signature)
        return out


def _signature(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return (tuple(x.shape), x.dtype)
    if isinstance(x, dict):
        return tuple((k, _signature(v)) for k, v in x.items())
    return x if isinstance(x, (int, float, str, bool, type(None))) else type(x)


class SpacesOnly(gym.vector.VectorEnv):
    """Stands in for an env when a checkpoint is loaded only to act."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, device: str | torch.device) -> None:
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.num_envs, self.device = 1, torch.device(device)

    def step(self, actions):  # pragma: no cover - never stepped
        raise RuntimeError("this agent was loaded without an env; pass env= to load(...) to train it")

    def reset(self, *, seed=None, options=None):  # pragma: no cover
        raise RuntimeError("this agent was loaded without an env; pass env= to load(...) to train it")
