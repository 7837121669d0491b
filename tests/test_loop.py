"""The loop as a whole: budgets spent, checkpoints, resume after a stop, and learning end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pbrl.evaluation import load_obs_rms, policy_report, random_returns, selection_score
from pbrl.loop import PreferenceRun
from pbrl.rollout import RelabelingPPO
from pbrl.seeds import RUN_EVAL_SEED
from pbrl.store import PreferenceStore


def test_run_spends_the_budget_and_writes_metrics(tiny_config):
    cfg = tiny_config()
    run = PreferenceRun.create(cfg)
    run_dir = run.run_dir
    metrics = run.run(progress=False)
    run.close()
    assert metrics["n_labels"] == cfg.n_labels and metrics["total_timesteps"] == cfg.total_timesteps
    on_disk = json.loads(run_dir.metrics.read_text())
    for key in ("env_id", "reward", "n_labels", "total_timesteps", "eval_true_return_mean", "eval_true_return_std",
                "n_eval_episodes", "reward_model_val_accuracy", "learned_true_return_corr", "wall_time_s",
                "env_steps_per_s"):
        assert key in on_disk
    assert run_dir.reward_model.exists() and run_dir.policy.exists() and run_dir.vecnormalize.exists()
    assert any(run_dir.tb.rglob("events.out.tfevents*"))


def _stopped_in_round(cfg, round_: int, monkeypatch):
    """A new run stopped (as by Ctrl-C) in round ``round_``, after its labels, before that round's checkpoint."""
    run = PreferenceRun.create(cfg)
    original = PreferenceRun.log_round

    def stop(self):
        if self.state.round == round_:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(PreferenceRun, "log_round", stop)
    with pytest.raises(KeyboardInterrupt):
        run.run(progress=False)
    run.close()
    monkeypatch.setattr(PreferenceRun, "log_round", original)
    return run.run_dir


def test_wall_time_covers_pretraining(tiny_config, monkeypatch):
    """The checkpoint after pretraining already counts its time, so a run's wall time includes it."""
    run = _stopped_in_round(tiny_config(), 1, monkeypatch)
    state = json.loads(run.state.read_text())  # written after pretraining, before round 1's checkpoint
    assert state["pretrained"] and state["round"] == 0
    assert state["wall_time_s"] >= state["fit_time_s"] > 0


def test_status_of_a_stopped_run_shows_its_pace_and_the_time_left(tiny_config, monkeypatch, capsys):
    from pbrl.cli import main

    run = _stopped_in_round(tiny_config(total_timesteps=640), 3, monkeypatch)  # checkpointed after round 2
    assert main(["status", "--run-dir", str(run.path)]) == 0
    status = json.loads(capsys.readouterr().out)
    last = json.loads(run.state.read_text())["last_round"]
    assert status["timesteps"] == 256 and not status["finished"] and last["steps_per_s"] > 0
    assert status["eta_s"] == pytest.approx((640 - 256) / last["steps_per_s"])
    assert status["training_true_return"] == last["ep_true_return"] < 0  # Pendulum pays only costs


def test_evaluations_during_the_run_keep_the_best_policy(tiny_config, monkeypatch, capsys):
    """--eval-every: one evaluation a round, logged; best/ holds the policy that scored best, which replays the
    recorded returns; a resumed run does not evaluate again at once; metrics report best/ on other episodes."""
    cfg = tiny_config(eval_every=128, total_timesteps=640, eval_episodes=2)
    run = _stopped_in_round(cfg, 3, monkeypatch)
    resumed = PreferenceRun(cfg, run, resume=True)
    metrics = resumed.run(progress=False)
    resumed.close()

    lines = [json.loads(line) for line in run.evals.read_text().splitlines()]
    # round three's evaluation ran before the stop and again after the resume: a line each, one checkpoint
    assert [e["num_timesteps"] for e in lines] == [128, 256, 384, 384, 512, 640]
    kept = json.loads((run.best / "eval.json").read_text())
    best = max(lines[:2] + lines[3:], key=selection_score)  # the run as it went on after the resume
    assert kept["num_timesteps"] == best["num_timesteps"] and kept["returns"] == best["returns"]
    assert kept == json.loads(run.state.read_text())["best_eval"]
    model = RelabelingPPO.load(str(run.best / "policy.zip"), device="cpu")
    replay = policy_report(model, cfg.env_id, 2, cfg.seed + RUN_EVAL_SEED,
                           load_obs_rms(run.best / "vecnormalize.pkl"))
    assert replay["returns"] == kept["returns"]  # the kept files are the policy that was evaluated
    assert metrics["best"]["num_timesteps"] == kept["num_timesteps"] and len(metrics["best"]["returns"]) == 2
    assert metrics["best"]["picked_on"] == kept
    from pbrl.cli import main

    assert main(["status", "--run-dir", str(run.path)]) == 0  # the latest and the best evaluation, at a glance
    status = json.loads(capsys.readouterr().out)
    shown = ("num_timesteps", "eval_true_return_mean", "eval_true_return_std")
    assert status["last_eval"] == {k: lines[-1][k] for k in shown} and status["last_eval"]["num_timesteps"] == 640
    assert status["best_eval"] == {k: kept[k] for k in shown}
    state = json.loads(run.state.read_text())
    assert status["training_true_return"] == state["last_round"]["ep_true_return"]
    assert -1 <= status["learned_true_return_corr"] <= 1
    for argv in (["status"], ["train", "--resume"]):  # a kept policy is not a run to go on with: one line says so
        assert main([*argv, "--run-dir", str(run.best)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is a kept policy" in err[0] and str(run.path) in err[0]
    assert not (run.best / "preferences.sqlite").exists()


def test_the_final_policy_is_evaluated_with_the_others_and_can_be_kept_as_best(tiny_config):
    """The last round's policy joins the --eval-every series even between two due steps: a run's best policy is
    often its last."""
    cfg = tiny_config(eval_every=256, total_timesteps=640, eval_episodes=1)
    run = PreferenceRun.create(cfg)
    run.run(progress=False)
    run.close()
    run_dir = run.run_dir
    lines = [json.loads(line) for line in run_dir.evals.read_text().splitlines()]
    assert [e["num_timesteps"] for e in lines] == [256, 512, 640]
    kept = json.loads((run_dir.best / "eval.json").read_text())
    assert kept == {k: v for k, v in max(lines, key=selection_score).items() if k != "best"}


def test_the_backflip_summary_counts_flips_and_how_far_back_each_episode_turned():
    from pbrl.evaluation import behaviour_summary

    flip = np.concatenate([np.linspace(0, -2 * np.pi, 50), np.full(20, -2 * np.pi)])  # a whole turn, then stands
    lie = np.concatenate([np.linspace(0, -5.0, 40), np.full(30, -5.0)])  # 5 rad back, and lies there
    forward = np.linspace(0, 1.0, 70)  # tips forward: no backward turn at all
    feet = np.r_[True, np.zeros(49, bool), np.ones(20, bool)]  # on the foot at the start and the end
    eps = [{"torso_angle": a, "feet_down": feet} for a in (flip, lie, forward)]
    out = behaviour_summary("pbrl/HopperBackflip-v0", eps)
    assert out["flips_per_episode"] == [1, 0, 0] and out["episodes_with_a_flip"] == 1
    assert out["furthest_back_turn_per_episode"] == [round(2 * np.pi, 2), 5.0, 0.0]
    assert behaviour_summary("Hopper-v5", eps) == {}


def test_selection_score_ranks_the_behaviour_before_the_return():
    flips = {"eval_true_return_mean": -5.0, "flips_per_episode": [1, 0, 1], "episodes_with_a_flip": 2}
    more_return = {"eval_true_return_mean": 9.0, "flips_per_episode": [3, 0, 0], "episodes_with_a_flip": 1}
    assert selection_score(flips) > selection_score(more_return)
    no_flip = {"eval_true_return_mean": 0.0, "flips_per_episode": [0, 0], "episodes_with_a_flip": 0}
    assert selection_score({**no_flip, "furthest_back_turn_per_episode": [4.0, 5.0]}) > selection_score(
        {**no_flip, "furthest_back_turn_per_episode": [1.0, 0.5]})
    assert selection_score({"eval_true_return_mean": 2.0}) > selection_score({"eval_true_return_mean": 1.0})


def test_heldout_segments_are_never_queried_and_survive_a_resume(tiny_config):
    """The test set of the reward model: a sample of the run's segments that no comparison ever uses."""
    cfg = tiny_config(heldout_rate=0.2, heldout_size=30, total_timesteps=1024)
    run = PreferenceRun.create(cfg)
    run_dir = run.run_dir
    metrics = run.run(progress=False)
    held = run.heldout.segments()
    run.close()
    assert 3 <= len(held) <= 30 and metrics["n_heldout_segments"] == len(held) and run_dir.heldout.exists()
    with PreferenceStore(run_dir.store) as store:
        used = [store.segment(i) for c in store.comparisons() for i in (c.first_id, c.second_id)]
    for seg in held:
        assert not any(np.array_equal(seg.obs, u.obs) for u in used)
    assert -1.0 <= metrics["learned_true_return_corr"] <= 1.0 and "learned_true_return_corr_val" in metrics
    resumed = PreferenceRun(cfg, run_dir, resume=True)
    assert [s.policy_step for s in resumed.heldout.segments()] == [s.policy_step for s in held]
    resumed.close()


def test_true_reward_run_asks_no_labels(tiny_config):
    cfg = tiny_config(reward="true")
    run = PreferenceRun.create(cfg)
    run_dir = run.run_dir
    metrics = run.run(progress=False)
    run.close()
    assert metrics["n_labels"] == 0 and metrics["reward"] == "true"
    assert not run_dir.reward_model.exists()


@pytest.mark.parametrize("schedule,last_share", [("constant", 1.0), ("linear", 0.25)])
def test_a_linear_learning_rate_falls_round_by_round_to_zero_at_the_last_step(tiny_config, schedule, last_share):
    from pbrl.run_parts import learning_rate_at

    cfg = tiny_config(reward="true", ppo={**tiny_config().ppo.settings, "lr_schedule": schedule})
    assert cfg.total_timesteps == 4 * cfg.round_steps
    run = PreferenceRun.create(cfg)
    run.run(progress=False)
    lr = run.ppo.policy.optimizer.param_groups[0]["lr"]  # what the last round trained with
    run.close()
    assert lr == pytest.approx(3e-4 * last_share)
    assert learning_rate_at(cfg.ppo.settings, cfg.total_timesteps, cfg.total_timesteps) == 3e-4 * (schedule != "linear")
    assert learning_rate_at({"learning_rate": 1e-3}, 500, 1000) == 1e-3  # a run directory from before the setting


def test_resume_continues_where_the_run_stopped(tiny_config, monkeypatch):
    cfg = tiny_config()
    run = _stopped_in_round(cfg, 2, monkeypatch)

    state = json.loads(run.state.read_text())
    assert state["round"] == 1 and state["num_timesteps"] == cfg.round_steps  # last completed round
    with PreferenceStore(run.store) as store:
        asked_before = store.counts().n_asked  # round two's labels were stored before the stop
    assert asked_before > state["round"] and not run.metrics.exists()

    resumed = PreferenceRun(cfg, run, resume=True)
    assert resumed.ppo.num_timesteps == cfg.round_steps and resumed.state.pretrained
    metrics = resumed.run(progress=False)
    resumed.close()
    assert metrics["total_timesteps"] == cfg.total_timesteps
    with PreferenceStore(run.store) as store:
        comps = store.comparisons()
        assert store.counts().n_labels == cfg.n_labels  # exactly the budget: nothing asked twice
        assert len({(c.first_id, c.second_id) for c in comps}) == len(comps)
    assert json.loads(run.state.read_text())["round"] == cfg.total_timesteps // cfg.round_steps


@pytest.mark.slow
def test_learned_reward_agent_beats_a_random_policy(tiny_config):
    """HalfCheetah from 60 synthetic labels and 30k PPO steps runs forward; random actions do not."""
    cfg = tiny_config(env_id="HalfCheetah-v5", total_timesteps=30_720, n_labels=60, segment_length=50,
                      segment_buffer_size=300, label_interval=5120, pretrain_epochs=100, fit_epochs=5,
                      reward_hidden=64, eval_episodes=3, ppo=None, ppo_preset="zoo")  # the preset it was sized on
    cfg.resolve()
    run = PreferenceRun.create(cfg)
    metrics = run.run(progress=False)
    run.close()
    random_mean = float(np.mean(random_returns("HalfCheetah-v5", 3, seed=123)))
    assert metrics["learned_true_return_corr"] > 0.8
    assert metrics["eval_true_return_mean"] > random_mean + 100.0, (metrics["eval_true_return_mean"], random_mean)


@pytest.mark.parametrize("initial_episode_steps", [0, 25])
def test_initial_segments_restart_the_env_when_asked(tiny_config, initial_episode_steps):
    """Short initial episodes: every initial segment lies inside one of them, and there are many more starts."""
    run = PreferenceRun.create(tiny_config(initial_episode_steps=initial_episode_steps, segment_length=10))
    run.collect_initial_segments()
    segs = run.buffer.segments()
    run.close()
    assert segs
    starts = {(s.env_index, s.episode) for s in segs}
    if initial_episode_steps:
        assert all(s.env_step + s.length <= 25 for s in segs)
        assert len(starts) >= run.n_initial_steps // 25 - 1
    else:  # Pendulum's 200-step episodes
        assert len(starts) <= run.n_initial_steps // 200 + 1


def test_initial_segments_come_from_uniform_random_actions_by_default(tiny_config):
    run = PreferenceRun.create(tiny_config(n_labels=100))  # 600 initial steps
    run.collect_initial_segments()
    acts = np.concatenate([s.acts for s in run.buffer.segments()])
    run.close()
    assert acts.min() >= -2.0 and acts.max() <= 2.0  # Pendulum's bounds
    # uniform on [-2, 2]: a quarter of the actions beyond +-1.5 (an untrained Gaussian policy, std 1: 13 %)
    assert 0.19 < np.mean(np.abs(acts) > 1.5) < 0.31


def test_a_round_evaluates_the_buffer_once_and_its_figures_match_a_fresh_pass(tiny_config):
    """The output statistics' pass over the buffer is what the logged correlation and the next query choice use:
    the same figures as evaluating the segments afresh."""
    import torch

    from pbrl.reward.diagnostics import learned_true_corr
    from pbrl.run_report import recent_corr
    from pbrl.segments import stack

    run = PreferenceRun.create(tiny_config(total_timesteps=384))
    run.run(progress=False)
    segments = run.buffer.segments()
    assert len(run.member_returns) >= len(segments) > 3  # the last fit's pass covered the whole buffer
    calls = []
    raw = run.ensemble.raw
    run.ensemble.raw = lambda obs, acts: calls.append(len(obs)) or raw(obs, acts)
    cached = run.member_returns.get(run.ensemble, segments)
    assert calls == []
    with torch.no_grad():
        fresh = raw(*stack(segments)).sum(-1).numpy()
    np.testing.assert_allclose(cached, fresh, rtol=1e-4, atol=1e-5)
    unqueried = [s for s in segments if s.id is None]
    assert len(unqueried) >= 3
    assert recent_corr(run.ensemble, segments, run.member_returns) == pytest.approx(
        learned_true_corr(run.ensemble, unqueried), abs=1e-5)
    run.close()


@pytest.mark.parametrize("selection", ["disagreement", "random"])
def test_choosing_queries_evaluates_only_the_candidates_segments(tiny_config, selection):
    run = PreferenceRun.create(tiny_config(total_timesteps=384, query_selection=selection))
    run.run(progress=False)
    run.member_returns.clear()  # as if the ensemble had just changed: nothing kept
    evaluated = []
    raw = run.ensemble.raw
    run.ensemble.raw = lambda obs, acts: evaluated.append(len(obs)) or raw(obs, acts)
    assert len(run.ask(2)) == 2
    n_candidates = 2 * run.cfg.method.oversample
    if selection == "random":
        assert evaluated == []  # no returns needed
    else:
        assert len(evaluated) == 1 and 2 <= evaluated[0] <= 2 * n_candidates < len(run.buffer)
    run.close()
