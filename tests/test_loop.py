"""The loop as a whole: budgets spent, checkpoints, resume after a stop, and learning end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pbrl.evaluation import random_returns
from pbrl.loop import PreferenceRun
from pbrl.store import PreferenceStore


def test_run_spends_the_budget_and_writes_metrics(tiny_config):
    cfg = tiny_config()
    session = PreferenceRun.create(cfg)
    run = session.run_dir
    metrics = session.run(progress=False)
    session.close()
    assert metrics["n_labels"] == cfg.n_labels and metrics["total_timesteps"] == cfg.total_timesteps
    on_disk = json.loads(run.metrics.read_text())
    for key in ("env_id", "reward", "n_labels", "total_timesteps", "eval_true_return_mean", "eval_true_return_std",
                "n_eval_episodes", "reward_model_val_accuracy", "learned_true_return_corr", "wall_time_s",
                "env_steps_per_s"):
        assert key in on_disk
    assert run.reward_model.exists() and run.policy.exists() and run.vecnormalize.exists()
    assert any(run.tb.rglob("events.out.tfevents*"))


def test_true_reward_run_asks_no_labels(tiny_config):
    cfg = tiny_config(reward="true")
    session = PreferenceRun.create(cfg)
    run = session.run_dir
    metrics = session.run(progress=False)
    session.close()
    assert metrics["n_labels"] == 0 and metrics["reward"] == "true"
    assert not run.reward_model.exists()


def test_resume_continues_where_the_run_stopped(tiny_config, monkeypatch):
    cfg = tiny_config()
    session = PreferenceRun.create(cfg)
    run = session.run_dir
    original = PreferenceRun.log_round

    def stop_in_round_two(self):
        if self.state.round == 2:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(PreferenceRun, "log_round", stop_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        session.run(progress=False)
    session.close()
    monkeypatch.setattr(PreferenceRun, "log_round", original)

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
                      reward_hidden=64, eval_episodes=3, ppo=None)
    cfg.resolve()
    session = PreferenceRun.create(cfg)
    metrics = session.run(progress=False)
    session.close()
    random_mean = float(np.mean(random_returns("HalfCheetah-v5", 3, seed=123)))
    assert metrics["learned_true_return_corr"] > 0.8
    assert metrics["eval_true_return_mean"] > random_mean + 100.0, (metrics["eval_true_return_mean"], random_mean)
