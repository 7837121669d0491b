"""The learned reward reaches PPO in one batched pass per rollout; the true reward stays recorded beside it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from pbrl.envs.wrappers import TRUE_REWARD_KEY, TrueRewardInInfo
from pbrl.rollout import RelabelingPPO, ReturnNormalizer, RolloutRecorder

N_STEPS = 64
TIME_LIMIT = 25  # several time-limit truncations inside one rollout


class _Identity:
    def __call__(self, rews, dones):
        return rews.astype(np.float32)


class _InfoLog(BaseCallback):
    def __init__(self):
        super().__init__()
        self.true_rewards: list[float] = []

    def _on_step(self) -> bool:
        self.true_rewards.extend(info[TRUE_REWARD_KEY] for info in self.locals["infos"])
        return True


def _ppo(reward_fn, normalizer=None):
    env_fn = lambda: Monitor(TrueRewardInInfo(gym.make("Pendulum-v1", max_episode_steps=TIME_LIMIT)))  # noqa: E731
    recorder = RolloutRecorder(DummyVecEnv([env_fn]), capacity=N_STEPS)
    venv = VecNormalize(recorder, norm_obs=True, norm_reward=False)
    ppo = RelabelingPPO("MlpPolicy", venv, n_steps=N_STEPS, batch_size=32, n_epochs=1, seed=0, device="cpu",
                        policy_kwargs={"net_arch": [8]})
    ppo.recorder, ppo.reward_fn = recorder, reward_fn
    ppo.return_normalizer = normalizer or _Identity()
    return ppo, recorder


def _collect(ppo):
    cb = _InfoLog()
    ppo._setup_learn(N_STEPS, cb)
    cb.init_callback(ppo)
    assert ppo.collect_rollouts(ppo.env, cb, ppo.rollout_buffer, N_STEPS)
    return ppo.rollout_buffer, cb


def _gae(rewards, values, episode_starts, last_value, last_done, gamma, lam):
    adv = np.zeros_like(rewards)
    last = 0.0
    for t in reversed(range(len(rewards))):
        next_nonterminal = 1.0 - (last_done if t == len(rewards) - 1 else episode_starts[t + 1])
        next_value = last_value if t == len(rewards) - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_value * next_nonterminal - values[t]
        last = delta + gamma * lam * next_nonterminal * last
        adv[t] = last
    return adv


def test_ppo_is_paid_the_learned_reward_and_the_true_one_is_kept():
    calls = []

    def reward_fn(obs, acts):  # (T, n_envs, 3), (T, n_envs, 1) -> (T, n_envs)
        calls.append(obs.shape)
        return (obs[..., 0] + 2.0 * acts[..., 0]).astype(np.float32)

    ppo, recorder = _ppo(reward_fn)
    buf, cb = _collect(ppo)
    rec = recorder.take(N_STEPS, ppo.num_timesteps)
    assert calls == [(N_STEPS, 1, 3)], "one batched call per rollout"
    learned = reward_fn(rec.obs, rec.acts)
    truncated = rec.dones[:, 0]
    assert truncated.sum() >= 2
    # off the truncation steps PPO sees exactly the learned reward
    np.testing.assert_allclose(buf.rewards[~truncated, 0], learned[~truncated, 0], rtol=1e-5, atol=1e-5)
    # on them, the learned reward plus SB3's bootstrap gamma * V(terminal obs), which is kept
    assert np.all(np.abs(buf.rewards[truncated, 0] - learned[truncated, 0]) > 0)
    # the true reward is recorded as the env paid it, and is visible in info
    np.testing.assert_allclose(rec.true_rews[:, 0], cb.true_rewards, rtol=1e-6)
    assert not np.allclose(rec.true_rews[:, 0], learned[:, 0])
    # advantages and returns were recomputed from the relabelled rewards
    with th.no_grad():
        last_value = ppo.policy.predict_values(ppo.policy.obs_to_tensor(ppo._last_obs)[0]).numpy().ravel()[0]
    adv = _gae(buf.rewards[:, 0], buf.values[:, 0], buf.episode_starts[:, 0], last_value,
               float(ppo._last_episode_starts[0]), ppo.gamma, ppo.gae_lambda)
    np.testing.assert_allclose(buf.advantages[:, 0], adv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(buf.returns[:, 0], adv + buf.values[:, 0], rtol=1e-4, atol=1e-4)


def test_true_reward_mode_goes_through_the_same_path():
    ppo, recorder = _ppo(None)
    buf, _ = _collect(ppo)
    rec = recorder.take(N_STEPS, ppo.num_timesteps)
    ok = ~rec.dones[:, 0]
    np.testing.assert_allclose(buf.rewards[ok, 0], rec.true_rews[ok, 0], rtol=1e-5)


def test_recorder_keeps_raw_observations_under_normalisation():
    ppo, recorder = _ppo(None)
    _collect(ppo)
    raw_last = ppo.env.get_original_obs()
    assert np.allclose(recorder._last_obs, raw_last)
    assert not np.allclose(ppo._last_obs, raw_last)  # PPO itself sees normalised observations


def test_return_normalizer_scales_by_return_std():
    norm = ReturnNormalizer(n_envs=1, gamma=0.0)  # gamma 0: the "return" is the reward itself
    rng = np.random.default_rng(0)
    rews = rng.normal(0, 5.0, size=(4000, 1))
    out = norm(rews, np.zeros_like(rews, dtype=bool))
    assert out.std() == pytest.approx(1.0, rel=0.05)
    state = norm.state_dict()
    other = ReturnNormalizer(n_envs=1, gamma=0.0)
    other.load_state_dict(state)
    np.testing.assert_allclose(other(rews[:10], np.zeros((10, 1), bool)), norm(rews[:10], np.zeros((10, 1), bool)))
