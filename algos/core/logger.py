"""Run logging: TensorBoard events plus a ``metrics.jsonl`` that scripts can read back.

Only torch, the standard library and tensorboard are imported here, so the logger can be
used (and ``read_metrics`` called by plotting scripts) without the rest of policyopt.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import torch

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"


class RunLogger:
    """Writes scalar metrics of one run to ``run_dir``.

    Each :meth:`log` call appends one JSON object ``{"step", "time", **metrics}`` to
    ``metrics.jsonl`` (``time`` is seconds since the logger was created) and, with
    ``use_tensorboard``, adds the same scalars to TensorBoard event files in ``run_dir``.
    ``config`` is saved as ``config.json``. Usable as a context manager.
    """

    def __init__(
        self,
        run_dir: str | Path,
        use_tensorboard: bool = True,
        config: dict[str, Any] | None = None,
        resume_step: int | None = None,
    ) -> None:
        """``resume_step``: a resumed run drops what was logged after its checkpoint's step."""
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics_file = self.run_dir / METRICS_FILE
        if resume_step is not None and metrics_file.is_file():
            kept = [r for r in read_metrics(self.run_dir) if r["step"] <= resume_step]
            metrics_file.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._start = time.perf_counter()
        if config is not None:
            # default=str: configs hold devices, paths and dtypes that json cannot encode.
            (self.run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n")
        self._file = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")
        self._writer = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

            self._writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=None if resume_step is None else resume_step + 1)

    def log(self, step: int, metrics: Mapping[str, float | int | torch.Tensor]) -> dict[str, Any]:
        """Record ``metrics`` at ``step``; returns the record written to ``metrics.jsonl``.

        Tensor values must hold one element; they reach the host in a single transfer per
        device, so logging a dozen GPU scalars costs one synchronisation, not a dozen.
        """
        if self._file.closed:
            raise RuntimeError("RunLogger is closed")
        values: dict[str, float] = {}
        by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(f"metric {key!r} must be a scalar, got a tensor of shape {tuple(value.shape)}")
                by_device.setdefault(value.device, []).append((key, value))
            else:
                values[key] = float(value)
        for items in by_device.values():
            stacked = torch.stack([v.detach().reshape(()).to(torch.float64) for _, v in items])
            for (key, _), number in zip(items, stacked.tolist()):
                values[key] = number
        record = {"step": int(step), "time": time.perf_counter() - self._start}
        record.update((key, values[key]) for key in metrics)  # keep the caller's key order
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()  # a crashed run still leaves its metrics behind
        if self._writer is not None:
            for key in metrics:
                self._writer.add_scalar(key, values[key], int(step))
        return record

    @property
    def writer(self) -> Any:
        """The run's TensorBoard ``SummaryWriter`` (None without TensorBoard or once closed), for summaries other than scalars."""
        return self._writer

    def flush(self) -> None:
        self._file.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` in order (a torn last line is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # the run died mid-write
                break
            raise
    return records
