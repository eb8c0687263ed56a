"""Evaluation videos: record episodes of an evaluation env to mp4 files and TensorBoard.

:class:`RecordEvalVideo` wraps an evaluation env. After every ``reset()`` (each evaluation
starts with one) it renders copy 0 with :func:`vecenvs.render.make_renderer` until that copy's
first episode ends, then writes the frames to ``<video_dir>/<name>.mp4`` and, given a
SummaryWriter, as a video summary. An episode of length T gives T frames: the state after the
reset and after each step but the last, i.e. frame t shows the state action t was taken in
(the terminal state is not drawn: with same-step autoreset the env already holds the next
episode's first state).

The wrapper only reads the env's state: it passes actions and results through unchanged and
draws no random numbers, so evaluation returns are the same with and without it. Nothing here
is imported unless video capture is asked for.

Encoding: mp4 (H.264, every frame at full size) through imageio-ffmpeg's bundled ffmpeg; the
TensorBoard summary is an animated GIF image summary, the form ``SummaryWriter.add_video`` writes,
encoded with Pillow and subsampled to at most 240 pixels a side (``add_video`` itself imports
``moviepy.editor``, which moviepy 2 removed).
"""

from __future__ import annotations

import importlib
import io
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from policyopt import vecenvs
from policyopt.vecenvs import TorchVecEnvWrapper
from policyopt.vecenvs.render import INSTALL_VIDEO, RenderingUnavailable, make_renderer, render_kwargs

__all__ = ["RecordEvalVideo", "check_capture", "require_encoder", "write_mp4", "add_tensorboard_video"]

VIDEO_TAG = "eval/video"
# GIFs of rendered scenes compress poorly (a 1000-step 480x480 MuJoCo episode is ~60 MB): TensorBoard
# gets a preview this size, the mp4 the full frames.
TENSORBOARD_MAX_SIDE = 240


def require_encoder() -> Any:
    """imageio-ffmpeg with its ffmpeg binary, and Pillow, or a :class:`RenderingUnavailable` naming the install command."""
    missing = []
    for module in ("imageio_ffmpeg", "PIL"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append({"imageio_ffmpeg": "imageio-ffmpeg", "PIL": "pillow"}[module])
    if missing:
        raise RenderingUnavailable(
            f"video capture encodes with {' and '.join(missing)}, which is not installed; install it with: {INSTALL_VIDEO}"
        )
    imageio_ffmpeg = importlib.import_module("imageio_ffmpeg")
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise RenderingUnavailable(f"imageio-ffmpeg finds no ffmpeg binary ({e}); reinstall it with: {INSTALL_VIDEO}") from e
    return imageio_ffmpeg


def check_capture(env_id: str, device: Any = "cpu", backend: str | None = None, **env_kwargs: Any) -> dict[str, Any]:
    """Fail now, not at the first evaluation, if ``env_id`` cannot be rendered or encoded here.

    Builds one copy of the env (seeded 0, its own generator: the caller's random state is
    untouched) and renders its first frame. Returns the extra ``vecenvs.make`` keyword arguments
    a rendered env of ``env_id`` needs (:func:`vecenvs.render.render_kwargs`). Raises
    :class:`RenderingUnavailable` for a missing dependency and ``ValueError`` for an env that
    cannot be rendered.
    """
    require_encoder()
    make_kwargs = render_kwargs(env_id, device, backend)
    env = vecenvs.make(env_id, num_envs=1, device=device, seed=0, backend=backend, **env_kwargs, **make_kwargs)
    try:
        env.reset(seed=0)
        renderer = make_renderer(env)
        try:
            renderer.render()
        finally:
            renderer.close()
    finally:
        env.close()
    return make_kwargs


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: int) -> Path:
    """Write RGB ``uint8`` frames ``[H, W, 3]`` as an H.264 mp4 (yuv420p, so odd sizes lose their last row/column)."""
    imageio_ffmpeg = require_encoder()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = (s - s % 2 for s in frames[0].shape[:2])  # yuv420p needs even sides
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        quality=7,
        ffmpeg_log_level="error",
    )
    writer.send(None)  # start the ffmpeg process
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame[:h, :w, :3]))
    finally:
        writer.close()
    return path


def add_tensorboard_video(
    writer: Any, tag: str, frames: Sequence[np.ndarray], step: int, fps: int, max_side: int = TENSORBOARD_MAX_SIDE
) -> None:
    """Add ``frames`` to a ``torch.utils.tensorboard.SummaryWriter`` as a video (animated GIF image) summary,
    subsampled by a whole factor so that no side exceeds ``max_side`` pixels."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    stride = max(1, math.ceil(max(np.asarray(frames[0]).shape[:2]) / max_side))
    images = [Image.fromarray(np.ascontiguousarray(np.asarray(f)[::stride, ::stride, :3])) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    w, h = images[0].size
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buffer.getvalue())
    # the file writer add_video itself writes through (the run's events file)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), int(step))
    writer.flush()


class RecordEvalVideo(TorchVecEnvWrapper):
    """Records the first episode of copy 0 after every ``reset()`` of an evaluation env.

    ``name(step)`` names each video (default ``step_<N>``, ``N = step()``, the agent's step
    counter); files go to ``video_dir`` and, with ``writer`` (a SummaryWriter), a summary tagged
    ``tag`` at step N. An evaluation at a step already recorded (the run's final evaluation when
    it falls on an evaluation step: same policy, same initial states) is not recorded twice.
    ``videos`` lists the files written, ``lengths`` their frame counts.
    """

    def __init__(
        self,
        env: VectorEnv,
        video_dir: str | Path,
        step: Callable[[], int] = lambda: 0,
        writer: Any = None,
        tag: str = VIDEO_TAG,
        name: Callable[[int], str] = lambda n: f"step_{n}",
        width: int = 480,
        height: int = 480,
    ) -> None:
        super().__init__(env)
        require_encoder()
        self.renderer = make_renderer(env, 0, width=width, height=height)
        self.video_dir, self.writer, self.tag = Path(video_dir), writer, tag
        self._step, self._name = step, name
        self._frames: list[np.ndarray] = []
        self._recording = False
        self._recorded_steps: set[int] = set()
        self.videos: list[Path] = []
        self.lengths: list[int] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._recording = self._step() not in self._recorded_steps
        self._frames = [self.renderer.render()] if self._recording else []
        return obs, info

    def step(self, actions: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if self._recording:
            if bool(terminated[0] | truncated[0]):  # one host sync per step, only while recording
                self._save()
            else:
                self._frames.append(self.renderer.render())
        return obs, reward, terminated, truncated, info

    def _save(self) -> None:
        step = int(self._step())
        path = write_mp4(self.video_dir / f"{self._name(step)}.mp4", self._frames, self.renderer.fps)
        if self.writer is not None:
            add_tensorboard_video(self.writer, self.tag, self._frames, step, self.renderer.fps)
        self.videos.append(path)
        self.lengths.append(len(self._frames))
        self._recorded_steps.add(step)
        self._recording, self._frames = False, []

    def close(self, **kwargs: Any) -> None:
        self.renderer.close()
        self.env.close(**kwargs)
