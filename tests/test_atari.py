"""The Atari games: the score is masked, the paper's preprocessing, and no episode-end signal."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from pbrl.envs.atari import GAMES, SCORE_MASKS, make_atari, mask_frame, to_84  # noqa: E402
from pbrl.families import game_of  # noqa: E402


@pytest.fixture(scope="module")
def screens() -> dict[str, np.ndarray]:
    """One raw emulator frame per game after some random play (score on screen)."""
    out = {}
    for game in GAMES:
        env = make_atari(f"ALE/{game}-v5")
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(100):
            env.step(env.action_space.sample())
        out[game] = env.unwrapped.ale.getScreenRGB().copy()
        env.close()
    return out


@pytest.mark.parametrize("game", GAMES)
def test_frames_that_differ_only_in_the_score_are_identical_after_masking(screens, game):
    frame, rng = screens[game], np.random.default_rng(0)
    other = frame.copy()
    for r0, r1, c0, c1 in SCORE_MASKS[game]:  # any other score, lives or counter drawn in the masked area
        other[r0:r1, c0:c1] = rng.integers(0, 256, other[r0:r1, c0:c1].shape, dtype=np.uint8)
    assert not np.array_equal(frame, other)
    np.testing.assert_array_equal(mask_frame(frame, SCORE_MASKS[game]), mask_frame(other, SCORE_MASKS[game]))
    np.testing.assert_array_equal(to_84(mask_frame(frame, SCORE_MASKS[game])),
                                  to_84(mask_frame(other, SCORE_MASKS[game])))
    elsewhere = frame.copy()
    elsewhere[120:130, 60:100] = 255 - elsewhere[120:130, 60:100]  # the play field still shows
    assert not np.array_equal(mask_frame(frame, SCORE_MASKS[game]), mask_frame(elsewhere, SCORE_MASKS[game]))


def test_the_masked_area_is_black_in_what_the_agent_sees(screens):
    for game in GAMES:
        masked = mask_frame(screens[game], SCORE_MASKS[game])
        for r0, r1, c0, c1 in SCORE_MASKS[game]:
            assert not masked[r0:r1, c0:c1].any()
        assert masked.any()


def test_preprocessing_and_fixed_length_episodes_without_game_over():
    env = make_atari("ALE/Pong-v5", max_episode_steps=2000)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and "lives" not in info
    env.action_space.seed(0)
    score, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        score, steps = score + reward, steps + 1
        assert not terminated and "lives" not in info
        if truncated:
            break
    env.close()
    assert steps == 2000
    assert score < -21  # a random player loses a whole game (21 points) and the next one starts in the same episode


def test_game_of():
    assert game_of("ALE/Pong-v5") == "Pong" and game_of("ALE/Tetris-v5") is None and game_of("Hopper-v5") is None


def test_a_tiny_pong_run_goes_end_to_end(tmp_path):
    """Synthetic labels on the game score, the CNN ensemble, CnnPolicy PPO on the learned reward, evaluation."""
    import json

    from pbrl.cli import main

    run = tmp_path / "pong"
    args = ["train", "--env", "ALE/Pong-v5", "--n-labels", "12", "--total-timesteps", "512", "--n-envs", "2",
            "--max-episode-steps", "200", "--pretrain-epochs", "1", "--fit-epochs", "1", "--eval-episodes", "1",
            "--label-interval", "256", "--run-dir", str(run), "--no-progress",
            "--ppo", "n_steps=64", "--ppo", "batch_size=64", "--ppo", "n_epochs=1"]
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    assert metrics["n_labels"] == 12 and metrics["total_timesteps"] == 512
    assert cfg["segment_length"] == 25 and cfg["ppo"]["policy"] == "CnnPolicy"  # the paper's Atari settings
    assert metrics["eval_true_return_mean"] <= 0  # a Pong score, from a barely trained agent
    import torch

    from pbrl.run_dir import RunDir

    assert torch.load(RunDir(run).reward_model, weights_only=False)["kind"] == "cnn"
    # the labelled pairs are fitted on packed (pbrl.reward.frames) and unpack to exactly the stored segments
    from pbrl.config import TrainConfig
    from pbrl.loop import PreferenceRun
    from pbrl.reward.frames import PackedPairs

    resumed = PreferenceRun(TrainConfig.load(run / "config.json"), RunDir(run), resume=True)
    try:
        data = resumed.dataset()
        comps = resumed.store.answered()
        assert isinstance(data.obs, PackedPairs) and len(data) == len(comps) == 12
        conv = resumed.ppo.policy.features_extractor.cnn[0].weight  # a resumed CPU run trains channels-last
        on_cpu = conv.device.type == "cpu"  # device auto: a GPU machine runs Atari on cuda, in the default layout
        assert conv.is_contiguous(memory_format=torch.channels_last) == on_cpu and conv.is_contiguous() != on_cpu
        want = np.stack([np.stack([resumed.store.segment(c.first_id).obs, resumed.store.segment(c.second_id).obs])
                         for c in comps])
        np.testing.assert_array_equal(data.obs[np.arange(len(comps))], want)
        assert data.obs.nbytes < want.nbytes / 10
    finally:
        resumed.close()


def test_colour_clips_replay_the_exact_frames_from_saved_states():
    from pbrl.envs import make_env
    from pbrl.envs.atari import AtariClipRenderer, FixedLengthAtari
    from pbrl.envs.wrappers import STATE_KEY
    from pbrl.segments import Segment

    env = make_env("ALE/Pong-v5", seed=0)
    inner = env
    while not isinstance(inner, FixedLengthAtari):
        inner = inner.env
    _, info = env.reset(seed=0)
    states, acts, seen = [], [], []
    for t in range(30):
        a = t % env.action_space.n
        states.append(info[STATE_KEY])
        acts.append(np.eye(env.action_space.n, dtype=np.float32)[a])
        _, _, _, _, info = env.step(a)
        seen.append(inner.last_rgb)  # the colour frame the game showed after the step, score masked
    env.close()
    seg = Segment(obs=np.zeros((30, 4, 84, 84), np.uint8), acts=np.stack(acts), true_rews=np.zeros(30, np.float32),
                  policy_step=0, episode=0, env_step=0, states=np.stack(states))
    assert seg.states.dtype == np.uint8 and seg.states.shape == (30, 8192)
    renderer = AtariClipRenderer("ALE/Pong-v5", size=64)
    replayed = renderer.replay(seg)
    assert replayed.shape == (120, 210, 160, 3)
    for t in range(30):
        np.testing.assert_array_equal(replayed[4 * t + 3], seen[t])
    assert not replayed[:, :24].any()  # Pong's score rows stay black in the clip too
    assert renderer.frames(seg).shape == (120, 64, 49, 3) == (120, *renderer.clip_shape, 3) and renderer.fps == 60
    renderer.close()


def _pong_segment(n_steps: int):
    """``n_steps`` of Pong with their saved emulator states and one-hot actions."""
    from pbrl.envs import make_env
    from pbrl.envs.wrappers import STATE_KEY
    from pbrl.segments import Segment

    env = make_env("ALE/Pong-v5", seed=0)
    _, info = env.reset(seed=0)
    states, acts = [], []
    for t in range(n_steps):
        a = t % env.action_space.n
        states.append(info[STATE_KEY])
        acts.append(np.eye(env.action_space.n, dtype=np.float32)[a])
        _, _, _, _, info = env.step(a)
    env.close()
    return Segment(obs=np.zeros((n_steps, 4, 84, 84), np.uint8), acts=np.stack(acts),
                   true_rews=np.zeros(n_steps, np.float32), policy_step=0, episode=0, env_step=0,
                   states=np.stack(states))


def test_colour_clips_keep_the_screen_aspect_and_stop_between_frames():
    import time

    from pbrl.envs.atari import AtariClipRenderer
    from pbrl.envs.render import RenderStopped

    seg = _pong_segment(20)
    renderer = AtariClipRenderer("ALE/Pong-v5", size=420)  # twice the screen's 210 rows
    try:
        assert renderer.clip_shape == (420, 320)
        frames, screens = renderer.frames(seg), renderer.replay(seg)
        assert frames.shape == (80, 420, 320, 3)
        np.testing.assert_array_equal(frames, screens.repeat(2, axis=1).repeat(2, axis=2))  # each pixel a 2x2 block
        asked = 0

        def should_stop() -> bool:
            nonlocal asked
            asked += 1
            return asked > 3

        with pytest.raises(RenderStopped):
            renderer.frames(seg, should_stop=should_stop)
        assert asked == 4  # three steps (12 frames) replayed, then stopped at the next question
    finally:
        t0 = time.perf_counter()
        renderer.close()
        assert time.perf_counter() - t0 < 0.5


def test_evaluations_report_the_score_of_each_finished_game():
    """Inside a fixed-length episode games restart silently; an evaluation still reports each finished game's score
    (player minus opponent), what papers call the score, and the episode return is the sum over all its steps."""
    from pbrl.envs.atari import GAME_SCORE_KEY
    from pbrl.evaluation import behaviour_summary

    env = make_atari("ALE/Pong-v5", max_episode_steps=2000)
    env.reset(seed=0)
    env.action_space.seed(0)
    finished, score = [], 0.0
    for _ in range(2000):
        _, reward, _, _, info = env.step(env.action_space.sample())
        score += reward
        if GAME_SCORE_KEY in info:
            finished.append(info[GAME_SCORE_KEY])
    unfinished = env.get_wrapper_attr("game_points")  # the game under way when the episode ends is not counted
    env.close()
    assert len(finished) >= 1 and all(-21 <= g <= -15 for g in finished)  # random play loses each game
    assert sum(finished) + unfinished == score
    eps = [{"return": score, GAME_SCORE_KEY: np.array([np.nan, finished[0], np.nan])}]
    assert behaviour_summary("ALE/Pong-v5", eps) == {"game_scores": [finished[0]], "game_score_mean": finished[0]}
