"""The env-family registry: every env id resolves to one task and family, and what they give a run is recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pbrl.cli import main
from pbrl.envs import make_env
from pbrl.envs.atari import GAME_SCORE_KEY
from pbrl.families import FAMILIES, PPO_BASE, PPO_PRESETS, TASKS, family_of, ppo_preset, preset_names, task_of


@pytest.mark.parametrize("env_id, task, family", [
    ("Hopper-v5", "Hopper", "body"),
    ("Walker2d-v4", "Walker2d", "body"),
    ("HalfCheetah-v5", "HalfCheetah", "mujoco"),
    ("InvertedPendulum-v5", "InvertedPendulum", "pendulum"),
    ("InvertedDoublePendulum-v5", "InvertedDoublePendulum", "pendulum"),
    ("pbrl/HopperBackflip-v0", "HopperBackflip", "behaviour"),
    ("ALE/Pong-v5", "Pong", "atari"),
    ("Pong-v0", "", "other"),  # a name like a game's, but not the ALE's
    ("my_pkg.envs:Hopper-v5", "", "other"),  # a user's own env under a module is never taken for ours
    ("CartPole-v1", "", "other"),
])
def test_each_env_id_resolves_to_one_task_and_family(env_id, task, family):
    assert task_of(env_id).base == task
    assert family_of(env_id).name == family


def test_every_preset_named_exists_and_changes_only_known_ppo_settings():
    for task in TASKS.values():
        assert task.family in FAMILIES
        for key in task.presets.values():
            assert key in PPO_PRESETS, (task.base, key)
        for name in preset_names(task.base + "-v5" if task.family != "atari" else f"ALE/{task.base}-v5"):
            assert name
    for key, preset in PPO_PRESETS.items():
        assert set(preset.settings) <= set(PPO_BASE), key
        assert preset.source


def test_atari_evaluations_record_the_game_score_key():
    assert family_of("ALE/Pong-v5").eval_keys == (GAME_SCORE_KEY,)


def test_the_behaviour_envs_keep_the_settings_they_were_tuned_with():
    """The committed backflip policy was trained with these; a new MuJoCo preset must not change them."""
    settings, source = ppo_preset("pbrl/HopperBackflip-v0")
    assert settings["n_steps"] == 512 and settings["batch_size"] == 32 and settings["n_envs"] == 1
    assert settings["learning_rate"] == 9.80828e-05 and settings["gamma"] == 0.999
    assert settings["policy_kwargs"] == {"log_std_init": -1, "ortho_init": False, "activation_fn": "relu",
                                         "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
    assert "Hopper-v3" in source
    cheetah, _ = ppo_preset("pbrl/HalfCheetahOneLeg-v0")
    assert cheetah["learning_rate"] == 2.0633e-05 and cheetah["policy_kwargs"]["log_std_init"] == -1


def test_presets_are_fresh_copies():
    a, _ = ppo_preset("Hopper-v5")
    a["policy_kwargs"]["net_arch"] = "changed"
    b, _ = ppo_preset("Hopper-v5")
    assert b["policy_kwargs"]["net_arch"] != "changed"


def test_the_old_presets_stay_selectable():
    fast, _ = ppo_preset("Hopper-v5")
    zoo, _ = ppo_preset("Hopper-v5", "zoo")
    assert fast["n_envs"] == 8 and fast["batch_size"] == 512
    assert zoo["n_envs"] == 1 and zoo["batch_size"] == 32
    assert "sb3" not in preset_names("ALE/Pong-v5")  # an MLP's settings for image observations would not run
    with pytest.raises(KeyError):
        ppo_preset("CartPole-v1", "fast")


def test_halfcheetah_measured_better_on_the_zoo_settings_defaults_to_them():
    default, source = ppo_preset("HalfCheetah-v5")
    assert default == ppo_preset("HalfCheetah-v5", "zoo")[0] and default["n_envs"] == 1
    assert source.startswith("zoo: rl-baselines3-zoo ppo.yml")
    assert ppo_preset("HalfCheetah-v5", "fast")[0]["n_envs"] == 8


def test_the_double_pendulum_trains_the_zoos_settings_on_8_envs_with_short_episodes_and_evaluates_whole_ones():
    from pbrl.config import TrainConfig, value_sources

    default, source = ppo_preset("InvertedDoublePendulum-v5")
    zoo = ppo_preset("InvertedDoublePendulum-v5", "zoo")[0]
    assert source.startswith("fast: rl-baselines3-zoo ppo.yml InvertedDoublePendulum-v3 on 8 envs")
    assert default == {**zoo, "n_envs": 8} and zoo["n_envs"] == 1
    cfg = TrainConfig.for_env("InvertedDoublePendulum-v5")
    assert (cfg.episode_steps, cfg.eval_episode_steps) == (250, 1000)
    assert TrainConfig.for_env("InvertedDoublePendulum-v5", max_episode_steps=1000).episode_steps == 1000
    assert TrainConfig.for_env("InvertedPendulum-v5").episode_steps is None  # its own 1,000-step limit
    sources = value_sources("InvertedDoublePendulum-v5", {}, {}, "fast")
    assert sources["max_episode_steps"] == sources["eval_episode_steps"] == "task InvertedDoublePendulum"


def test_the_pendulum_starts_again_after_a_fall_and_evaluations_count_until_the_first():
    env = make_env("InvertedPendulum-v5", seed=3)
    assert env.get_wrapper_attr("hold_steps") == 0  # what the pendulum's true-reward baseline was measured with
    ended, held, n, total = 0, 0, 0, 0.0
    truncated = False
    while not truncated:
        _, reward, terminated, truncated, info = env.step(np.ones(1, dtype=np.float32) * 3.0)  # pushes it over
        assert not terminated
        ended += bool(info.get("task_ended"))
        if info.get("frozen") or info.get("task_ended"):
            held += 1
            assert reward == 0.0  # the fallen pole, held before the restart, pays nothing
        n += 1
        total += float(reward)
    assert n == 1000  # fixed-length episodes
    assert ended >= 10  # it fell again and again, and started again each time
    assert held == ended  # no hold: each fall pays 0 on its own step, and the next step is a new start
    assert total == n - ended
    assert total > 0  # the restarted tasks pay again: the episode is not frozen after the first fall

    frozen = make_env("InvertedPendulum-v5", seed=3, for_evaluation=True)
    first, steps = 0.0, 0
    truncated = False
    while not truncated:
        _, reward, _, truncated, info = frozen.step(np.ones(1, dtype=np.float32) * 3.0)
        first += float(reward)
        steps += 1
    assert steps == 1000
    assert first < 50  # the env's own episode: what it earned before the first fall, then nothing


def test_config_json_records_where_values_came_from(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--run-dir", str(run), "--env", "Hopper-v5", "--reward", "true", "--total-timesteps", "2048",
            "--ppo-preset", "zoo", "--ppo", "n_steps=1024", "--eval-episodes", "1", "--no-progress",
            "--max-episode-steps", "50"]
    assert main(argv) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["ppo"]["n_steps"] == 1024 and cfg["ppo"]["batch_size"] == 32  # the zoo preset, one key changed
    sources = cfg["sources"]
    assert sources["ppo"].startswith("preset zoo: rl-baselines3-zoo ppo.yml Hopper-v3")
    assert sources["ppo.n_steps"] == "flag --ppo"
    assert sources["initial_episode_steps"] == "family body"
    assert sources["total_timesteps"] == "flag"
    assert "segment_length" not in sources  # the global default


def test_the_double_pendulums_reward_model_sees_observations_only_unless_a_flag_says_otherwise():
    from pbrl.config import TrainConfig, value_sources

    assert TrainConfig.for_env("InvertedDoublePendulum-v5").reward_model.use_actions is False
    assert TrainConfig.for_env("InvertedDoublePendulum-v5", reward_inputs="obs+action").reward_model.use_actions
    assert TrainConfig.for_env("InvertedPendulum-v5").reward_model.use_actions  # measured with r(o, a): 1,000 x 3
    sources = value_sources("InvertedDoublePendulum-v5", {}, {}, "zoo")
    assert sources["reward_inputs"] == "task InvertedDoublePendulum"


def test_an_unknown_preset_is_one_line(tmp_path, capsys):
    code = main(["train", "--run-dir", str(tmp_path / "r"), "--env", "Hopper-v5", "--ppo-preset", "fastest"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--ppo-preset 'fastest' is not one of Hopper-v5's: fast, sb3, zoo" in err[0]
    assert not (tmp_path / "r").exists()


def test_presets_command_shows_what_an_env_gets(capsys):
    assert main(["presets", "ALE/Pong-v5"]) == 0
    out = capsys.readouterr().out
    assert "family atari" in out and "segment_length=25" in out and "--ppo-preset atari (default)" in out
    assert main(["presets", "Hopper-v5"]) == 0
    out = capsys.readouterr().out
    assert "--ppo-preset fast (default)" in out and "batch_size=512" in out and "--ppo-preset zoo" in out


def test_a_hold_shows_the_fallen_pole_for_that_many_steps_before_the_restart():
    import gymnasium as gym

    from pbrl.envs.wrappers import RestartAfterEnd

    env = RestartAfterEnd(gym.make("InvertedPendulum-v5"), hold_steps=5)
    env.reset(seed=0)
    rewards, ended_at = [], None
    for t in range(40):
        _, reward, terminated, truncated, info = env.step(np.ones(1, dtype=np.float32) * 3.0)
        assert not terminated and not truncated
        rewards.append(reward)
        if info.get("task_ended"):
            ended_at = t
            break
    assert ended_at is not None
    fall = ended_at - 5  # the step the env terminated on, then 4 held copies, then the new start
    assert rewards[fall] == 0.0 and all(r == 0.0 for r in rewards[fall:])
    assert all(r == 1.0 for r in rewards[:fall])


def test_presets_of_a_mistyped_env_is_one_line(capsys):
    assert main(["presets", "Hoper-v5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown env id 'Hoper-v5'" in err[0] and "Hopper-v5" in err[0]
