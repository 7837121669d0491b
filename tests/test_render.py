"""Tests for clips: MuJoCo clips at any size, the shape of a clip known before it is rendered, and a clip that can be
abandoned between frames (``pbrl.envs.render``, ``pbrl.ui.render``)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pbrl.envs import make_env
from pbrl.envs.render import ClipRenderer, RenderStopped
from pbrl.segments import Segment
from pbrl.ui.render import AutoRenderer, ObservationBars, StackedFrames, clip_shape_for


@pytest.fixture(scope="module")
def hopper_segment() -> Segment:
    """125 steps of random Hopper play with their saved simulator states (one second of the window's clip)."""
    env = make_env("Hopper-v5", seed=0)
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    states = []
    for _ in range(125):
        states.append(info["pbrl_state"])
        _, _, _, _, info = env.step(env.action_space.sample())
    env.close()
    return Segment(obs=np.zeros((125, 11), np.float32), acts=np.zeros((125, 3), np.float32),
                   true_rews=np.zeros(125, np.float32), policy_step=0, episode=0, env_step=0,
                   states=np.stack(states))


def _first(segment: Segment, n: int) -> Segment:
    return Segment(obs=segment.obs[:n], acts=segment.acts[:n], true_rews=segment.true_rews[:n], policy_step=0,
                   episode=0, env_step=0, states=segment.states[:n])


@pytest.mark.parametrize("size", [640, 800])
def test_mujoco_clips_render_above_the_default_framebuffer(hopper_segment, size):
    """MuJoCo's offscreen framebuffer is 640x480 unless the model says otherwise; clips are not limited by it."""
    renderer = ClipRenderer("Hopper-v5", size=size)
    try:
        frames = renderer.frames(_first(hopper_segment, 6))
    finally:
        renderer.close()
    assert frames.shape == (6, size, size, 3) and frames.dtype == np.uint8
    assert frames.shape[1:3] == renderer.clip_shape
    assert min(f.std() for f in frames) > 5  # every frame a picture, not a blank
    assert not np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize("make", [
    lambda: ClipRenderer("Hopper-v5", size=8),
    lambda: ClipRenderer("Hopper-v5", size=15),
    lambda: ClipRenderer("Hopper-v5", size=4096),
    lambda: AutoRenderer("Hopper-v5", size=0),
    lambda: AutoRenderer("ALE/Pong-v5", size=100_000),
])
def test_a_clip_size_out_of_range_is_one_line_naming_the_sizes_that_work(make):
    with pytest.raises(ValueError, match="from 16 to 2048 pixels") as err:
        make()
    assert "\n" not in str(err.value)


def test_a_size_the_gl_driver_cannot_allocate_is_one_line(monkeypatch):
    import mujoco

    def no_buffer(*args, **kwargs):
        raise mujoco.FatalError("Offscreen framebuffer is not complete, error 0x8cd6")

    monkeypatch.setattr(mujoco, "Renderer", no_buffer)
    with pytest.raises(ValueError, match=r"1024 px MuJoCo clips cannot be rendered.*from 16 to 480 px") as err:
        ClipRenderer("Hopper-v5", size=1024)
    assert "\n" not in str(err.value) and "0x8cd6" in str(err.value)


@pytest.mark.parametrize("env_id, size, shape", [
    ("Hopper-v5", 256, (256, 256)),
    ("pbrl/HopperBackflip-v0", 800, (800, 800)),
    ("Pendulum-v1", 48, (48, 48)),
    ("ALE/Pong-v5", 210, (210, 160)),  # the screen's own size
    ("ALE/Pong-v5", 640, (640, 488)),
    ("ALE/Breakout-v5", 48, (48, 37)),
])
def test_the_clip_shape_is_known_from_the_env_id_before_anything_renders(env_id, size, shape):
    assert clip_shape_for(env_id, size) == shape
    renderer = AutoRenderer(env_id, size)  # builds no simulator until the first clip
    assert renderer.clip_shape == shape and renderer._clips is None
    renderer.close()


@pytest.mark.parametrize("renderer", [ObservationBars(32), StackedFrames(32)], ids=lambda r: type(r).__name__)
def test_pictures_of_observations_are_square(renderer):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(5, 11)).astype(np.float32) if isinstance(renderer, ObservationBars) else \
        rng.integers(0, 255, (5, 4, 84, 84), dtype=np.uint8)
    seg = Segment(obs=obs, acts=np.zeros((5, 1), np.float32), true_rews=np.zeros(5, np.float32), policy_step=0,
                  episode=0, env_step=0)
    assert renderer.clip_shape == (32, 32) and renderer.frames(seg).shape == (5, 32, 32, 3)


class StopAfter:
    """``should_stop`` that turns true on its ``n + 1``-th question, counting the questions."""

    def __init__(self, n: int):
        self.n, self.asked = n, 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked > self.n


@pytest.mark.parametrize("make", [lambda: ClipRenderer("Hopper-v5", 64), lambda: AutoRenderer("Hopper-v5", 64),
                                  lambda: ObservationBars(64)], ids=["mujoco", "auto", "bars"])
def test_a_clip_is_abandoned_at_the_first_frame_after_should_stop_turns_true(hopper_segment, make):
    renderer = make()
    try:
        stop = StopAfter(3)
        with pytest.raises(RenderStopped):
            renderer.frames(hopper_segment, should_stop=stop)
        assert stop.asked == 4  # three frames rendered, then asked once more and stopped
        thinned = isinstance(renderer, AutoRenderer)  # the window's renderer draws every other Hopper step
        assert renderer.frames(_first(hopper_segment, 4)).shape[0] == (2 if thinned else 4)  # it still works
    finally:
        renderer.close()


def test_a_window_closing_mid_clip_waits_a_frame_not_the_clip(hopper_segment):
    """As the window's thread renders: another thread sets the event; the clip ends within a frame or two."""
    renderer = ClipRenderer("Hopper-v5", 256)
    try:
        t0 = time.perf_counter()
        renderer.frames(_first(hopper_segment, 10))
        frame_s = (time.perf_counter() - t0) / 10
        stop, set_at, asked_after = threading.Event(), [], []

        def should_stop() -> bool:
            if stop.is_set():
                asked_after.append(time.perf_counter())
            return stop.is_set()

        timer = threading.Timer(10 * frame_s, lambda: (set_at.append(time.perf_counter()), stop.set()))
        timer.start()
        with pytest.raises(RenderStopped):
            renderer.frames(hopper_segment, should_stop=should_stop)
        stopped_in = time.perf_counter() - set_at[0]
        timer.join()
    finally:
        t0 = time.perf_counter()
        renderer.close()
        close_s = time.perf_counter() - t0
    assert len(asked_after) == 1  # no frame was rendered after the event was seen
    assert stopped_in < max(5 * frame_s, 0.5), f"took {stopped_in:.3f} s at {frame_s * 1000:.0f} ms a frame"
    assert close_s < 0.5


def test_render_states_keeps_its_signature_for_videos(hopper_segment):
    renderer = ClipRenderer("Hopper-v5", 32)
    try:
        frames = renderer.render_states(hopper_segment.states[:3])  # as pbrl video calls it
    finally:
        renderer.close()
    assert frames.shape == (3, 32, 32, 3)


def test_the_window_renders_fast_mujoco_clips_at_the_rate_a_screen_shows(hopper_segment):
    """Hopper steps at 125 Hz; a screen shows 60 frames a second, so the window's clips draw every other step (at
    62.5 fps, the same 1 s of play) and a pair renders in half the time."""
    renderer = AutoRenderer("Hopper-v5", 48)
    try:
        frames = renderer.frames(hopper_segment)
    finally:
        renderer.close()
    assert frames.shape == (63, 48, 48, 3) and renderer.fps == pytest.approx(62.5)
    assert len(frames) / renderer.fps == pytest.approx(125 / 125, abs=0.02)  # the clip still lasts one second
