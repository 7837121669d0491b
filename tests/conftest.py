"""Shared fixtures: a tiny, fast run config (small nets, few steps, fixed seeds)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

TINY_PPO = {
    "n_envs": 1, "normalize": True, "n_steps": 64, "batch_size": 32, "n_epochs": 1, "gamma": 0.99,
    "gae_lambda": 0.95, "learning_rate": 3e-4, "ent_coef": 0.0, "clip_range": 0.2, "max_grad_norm": 0.5,
    "vf_coef": 0.5, "policy_kwargs": {"net_arch": [16]},
}


@pytest.fixture
def tiny_config(tmp_path):
    """Factory for a TrainConfig that runs in seconds on Pendulum-v1."""
    from pbrl.config import TrainConfig

    def make(**overrides):
        fields = dict(env_id="Pendulum-v1", n_labels=20, total_timesteps=512, seed=0, run_dir=str(tmp_path / "run"),
                      segment_length=10, segment_buffer_size=100, label_interval=128, n_members=3, reward_hidden=16,
                      pretrain_epochs=5, fit_epochs=1, eval_episodes=1, ppo=dict(TINY_PPO))
        fields.update(overrides)
        return TrainConfig.of(**fields).resolve()

    return make


@pytest.fixture
def one_torch_thread():
    """The nets in tests are tiny: extra intra-op threads only add overhead, and on a busy box contend (50x)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def load_script(path: str):
    """A module of ``scripts/`` (not a package), loaded from its file: ``path`` is relative to ``scripts/``, without
    ``.py`` (``"tools/heldout_corr"``)."""
    import importlib.util
    from pathlib import Path

    name = path.rsplit("/", 1)[-1]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "scripts" / f"{path}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def human_run(tiny_config):
    """A run with --labeler human and ``n`` pending queries on Pendulum segments (no simulator states)."""

    def make(n: int = 6, **overrides):
        from pbrl.loop import PreferenceRun

        run = PreferenceRun.create(tiny_config(labeler="human", n_labels=40, **overrides))
        run.collect_initial_segments()
        ids = run.ask(n)
        run.close()
        assert len(ids) == n
        return run.run_dir.path, ids

    return make
