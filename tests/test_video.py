"""--capture-video: evaluation episodes rendered to mp4 and TensorBoard (vecenvs/render.py, algos/run/video.py).

A video of an episode of length T has T frames: the state after the reset and after every step
but the last (the state each action was taken in).
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, PPOConfig
from policyopt.algos.core.logger import RunLogger, read_metrics
from policyopt.algos.run.train import main as train_main
from policyopt.vecenvs import classic

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason='video capture needs pip install -e ".[video]"')
pytest.importorskip("pygame", reason='classic-control rendering needs pip install -e ".[video]"')

from policyopt.algos.run.video import RecordEvalVideo, check_capture  # noqa: E402
from policyopt.vecenvs.render import RenderingUnavailable, make_renderer, render_kwargs, select_gl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_PPO = [
    "--num-envs",
    "2",
    "--algo.num-steps",
    "16",
    "--algo.num-minibatches",
    "2",
    "--algo.update-epochs",
    "1",
    "--no-progress",
]


def frame_count(path: Path) -> int:
    """Frames in an mp4, counted by decoding it."""
    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def tiny_agent(env_id: str) -> PPO:
    return PPO(vecenvs.make(env_id, num_envs=2, seed=0), PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1))


def video_summaries(run_dir: Path) -> list:
    """The video (GIF image) summaries tagged eval/video in run_dir's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={IMAGES: 0})
    acc.Reload()
    return acc.Images("eval/video") if "eval/video" in acc.Tags()["images"] else []


@pytest.mark.parametrize("backend", [None, "gymnasium"])
def test_cartpole_video_has_one_frame_per_step_and_leaves_returns_unchanged(tmp_path, backend):
    agent = tiny_agent("CartPole-v1")
    kwargs = render_kwargs("CartPole-v1", backend=backend)
    recorded = RecordEvalVideo(vecenvs.make("CartPole-v1", num_envs=1, seed=3, backend=backend, **kwargs), tmp_path)
    with_video = agent.evaluate(recorded, seed=5)
    without = agent.evaluate(vecenvs.make("CartPole-v1", num_envs=1, seed=3, backend=backend), seed=5)
    assert with_video == without  # recording reads the state only
    length = int(with_video["length_mean"])  # one copy: its episode's length
    assert recorded.videos == [tmp_path / "step_0.mp4"]
    assert recorded.lengths == [length] and frame_count(recorded.videos[0]) == length


def test_mujoco_video_frame_count(tmp_path):
    pytest.importorskip("mujoco", reason='MuJoCo needs pip install -e ".[mujoco]"')
    try:
        select_gl()
    except RenderingUnavailable as e:
        print(f"skipping: {e}")
        pytest.skip(f"no offscreen GL for MuJoCo: {e}")
    env = vecenvs.make("Hopper-v5", num_envs=2, seed=0, max_episode_steps=12)
    recorded = RecordEvalVideo(env, tmp_path, width=96, height=64)
    policy = lambda obs: torch.zeros(obs.shape[0], 3)  # noqa: E731
    from policyopt.algos.core.evaluation import evaluate

    result = evaluate(policy, recorded, seed=1)
    assert result["length_mean"] == 12  # standing still: no copy falls within 12 steps
    assert frame_count(recorded.videos[0]) == 12
    renderer = make_renderer(env, 0, 96, 64)
    frame = renderer.render()
    assert frame.shape == (64, 96, 3) and frame.std() > 0  # a scene, not a blank image
    renderer.close()
    recorded.close()


STEPS = 8


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"])
def test_native_state_renders_like_gymnasium_stepping_the_same_actions(env_id):
    native = vecenvs.make(env_id, num_envs=1, seed=0, dtype=torch.float64)
    native.reset(seed=0)
    reference = gym.make(env_id, render_mode="rgb_array").unwrapped
    reference.reset(seed=0)
    reference.state = native.state[0].numpy().copy()  # the same start; from here each steps on its own
    renderer = make_renderer(native)
    space = reference.action_space
    space.seed(1)

    def gym_frame() -> np.ndarray:
        if hasattr(reference, "last_u"):
            reference.last_u = None  # Pendulum's torque arrow, which the native renderer leaves out
        return reference.render()

    first = renderer.render()
    assert np.array_equal(first, gym_frame())
    for _ in range(STEPS):
        action = space.sample()
        reference.step(action)
        native.step(torch.as_tensor(np.asarray(action)).reshape(1, *space.shape))
    last = renderer.render()
    assert np.array_equal(last, gym_frame())
    assert not np.array_equal(first, last)  # the frames follow the state, so the check can fail


def test_tensorboard_event_file_holds_the_video(tmp_path):
    agent = tiny_agent("CartPole-v1")
    with RunLogger(tmp_path) as logger:
        recorded = RecordEvalVideo(
            vecenvs.make("CartPole-v1", num_envs=2, seed=0), tmp_path / "videos", step=lambda: 42, writer=logger.writer
        )
        agent.evaluate(recorded, seed=0)
    (image,) = video_summaries(tmp_path)
    assert image.step == 42 and image.encoded_image_string.startswith(b"GIF89a")
    assert (image.width, image.height) == (200, 134)  # 600 x 400 subsampled by 3: a preview; the mp4 has every pixel


def test_train_script_capture_video_and_evaluate_script(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    common = ["--env-id", "CartPole-v1", "--total-steps", "64", "--eval-every", "32", "--eval-episodes", "2", *TINY_PPO]
    monkeypatch.setattr(sys, "argv", ["scripts/train_ppo.py", *common, "--run-dir", str(run), "--capture-video"])
    runpy.run_path(str(ROOT / "scripts" / "train_ppo.py"), run_name="__main__")
    # evaluations at steps 0, 32 and 64; the final one (also at 64) is not recorded twice
    assert sorted(p.name for p in (run / "videos").iterdir()) == ["step_0.mp4", "step_32.mp4", "step_64.mp4"]
    assert [i.step for i in video_summaries(run)] == [0, 32, 64]
    # the same run without video: the same evaluation returns
    plain = train_main(PPO, [*common, "--run-dir", str(tmp_path / "plain")])
    returns = lambda d: [r["eval/return"] for r in read_metrics(d) if "eval/return" in r]  # noqa: E731
    assert returns(run) == returns(tmp_path / "plain") and plain.global_step == 64

    capsys.readouterr()
    monkeypatch.setattr(
        sys,
        "argv",
        ["scripts/evaluate.py", str(run), "--episodes", "2", "--capture-video", "--video-dir", str(tmp_path / "eval_videos")],
    )
    runpy.run_path(str(ROOT / "scripts" / "evaluate.py"), run_name="__main__")
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["video"] == str(tmp_path / "eval_videos" / "eval_seed12345.mp4")
    assert 1 <= frame_count(Path(out["video"])) <= 500


def test_missing_renderer_or_encoder_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame now raises ImportError
    with pytest.raises(RenderingUnavailable, match=r'pip install -e "\.\[video\]"'):
        make_renderer(vecenvs.make("CartPole-v1", num_envs=1))
    run = tmp_path / "run"
    with pytest.raises(RenderingUnavailable, match="pygame"):  # at startup: nothing is written
        train_main(PPO, ["--total-steps", "32", "--eval-every", "32", "--run-dir", str(run), "--capture-video", *TINY_PPO])
    assert not run.exists()
    monkeypatch.delitem(sys.modules, "pygame")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(RenderingUnavailable, match=r'imageio-ffmpeg.*pip install -e "\.\[video\]"'):
        check_capture("CartPole-v1")


def test_unsupported_env_and_flag_errors(tmp_path):
    class MyCartPole(classic.CartPole):
        pass

    with pytest.raises(ValueError, match="cannot render .*MyCartPole.* it renders the native classic-control envs"):
        make_renderer(MyCartPole(num_envs=1))
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):  # an adapter env made without a render mode
        make_renderer(vecenvs.make("CartPole-v1", num_envs=1, backend="gymnasium"))
    with pytest.raises(ValueError, match="--capture-video records evaluation episodes.*--eval-every"):
        train_main(PPO, ["--total-steps", "32", "--eval-every", "0", "--run-dir", str(tmp_path / "r"), "--capture-video"])


def test_training_without_capture_video_imports_none_of_it(tmp_path):
    code = (
        "import sys; from policyopt import PPO; from policyopt.algos.run.train import main; "
        f"main(PPO, {['--total-steps', '32', '--eval-every', '32', '--eval-episodes', '1', '--run-dir', str(tmp_path / 'r'), '--algo.no-compile', *TINY_PPO]!r}); "
        "loaded = [m for m in ('pygame', 'imageio_ffmpeg', 'PIL', 'OpenGL', 'policyopt.vecenvs.render', 'policyopt.algos.run.video') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
