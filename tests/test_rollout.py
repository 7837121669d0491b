"""The learned reward reaches PPO in one batched pass per rollout; the true reward stays recorded beside it; a NaN or
inf from the env or the reward model stops the run where it appears, with one line saying where."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from pbrl.envs.wrappers import TRUE_REWARD_KEY, TrueRewardInInfo
from pbrl.finite import NonFiniteError
from pbrl.rollout import RelabelingPPO, ReturnNormalizer, RolloutHooks, RolloutRecorder

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


def _ppo(reward_fn, normalizer=None, wrap=lambda env: env):
    env_fn = lambda: Monitor(wrap(TrueRewardInInfo(gym.make("Pendulum-v1", max_episode_steps=TIME_LIMIT))))  # noqa: E731
    recorder = RolloutRecorder(DummyVecEnv([env_fn]), capacity=N_STEPS, env_id="Pendulum-v1")
    venv = VecNormalize(recorder, norm_obs=True, norm_reward=False)
    ppo = RelabelingPPO("MlpPolicy", venv, n_steps=N_STEPS, batch_size=32, n_epochs=1, seed=0, device="cpu",
                        policy_kwargs={"net_arch": [8]},
                        hooks=RolloutHooks(recorder, normalizer or _Identity(), reward_fn))
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


# --- non-finite values stop the run where they enter ------------------------------------------------------

class _Poison(gym.Wrapper):
    """Pendulum whose ``at_step``-th step, counted over all its episodes, returns ``value`` in observation
    coordinate 1 (``what="observation"``) or as the reward; or whose ``at_reset``-th reset returns it."""

    def __init__(self, env: gym.Env, what: str, value: float, at_step: int = 0, at_reset: int = 0):
        super().__init__(env)
        self.what, self.value, self.at_step, self.at_reset = what, value, at_step, at_reset
        self.n_steps = self.n_resets = 0

    def _poison(self, obs: np.ndarray) -> np.ndarray:
        obs = obs.copy()
        obs[1] = self.value
        return obs

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.n_resets += 1
        return (self._poison(obs) if self.n_resets == self.at_reset else obs), info

    def step(self, action):
        obs, rew, terminated, truncated, info = self.env.step(action)
        self.n_steps += 1
        if self.n_steps == self.at_step:
            if self.what == "observation":
                obs = self._poison(obs)
            else:
                rew = self.value
        return obs, rew, terminated, truncated, info


def _recorder(n_envs: int, poisoned_copy: int, **poison) -> RolloutRecorder:
    def env_fn(i: int):
        env = gym.make("Pendulum-v1", max_episode_steps=5)
        return _Poison(env, **poison) if i == poisoned_copy else env

    return RolloutRecorder(DummyVecEnv([lambda i=i: env_fn(i) for i in range(n_envs)]), capacity=64,
                           env_id="Pendulum-v1")


def _steps_until_error(recorder: RolloutRecorder, max_steps: int) -> tuple[int, str | None]:
    """Step with fixed actions; how many steps went through, and the error's message if one was raised."""
    actions = np.zeros((recorder.num_envs, 1), dtype=np.float32)
    done = 0
    try:
        recorder.reset()
        for _ in range(max_steps):
            recorder.step(actions)
            done += 1
    except NonFiniteError as e:
        return done, str(e)
    return done, None


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("n_envs", "poisoned_copy", "poison", "n_ok", "message"),
    [
        # episodes of 5 steps: step 12 of the run is step 2 of the third episode
        (1, 0, {"what": "observation", "value": NAN, "at_step": 3}, 2,
         "step 3 (episode step 3): observation has NaN at index 1"),
        (2, 1, {"what": "observation", "value": INF, "at_step": 12}, 11,
         "step 12 (episode step 2): observation has inf at index 1"),
        (1, 0, {"what": "reward", "value": INF, "at_step": 7}, 6, "step 7 (episode step 2): reward is inf"),
        (3, 2, {"what": "reward", "value": -INF, "at_step": 1}, 0, "step 1 (episode step 1): reward is -inf"),
        (1, 0, {"what": "reward", "value": NAN, "at_step": 5}, 4, "step 5 (episode step 5): reward is NaN"),
        # the last step of an episode: the observation SB3 bootstraps from at the time limit
        (2, 0, {"what": "observation", "value": NAN, "at_step": 10}, 9,
         "step 10 (episode step 5): terminal observation has NaN at index 1"),
        # the first observation of an episode, from the first reset or the automatic one after a done
        (2, 1, {"what": "observation", "value": NAN, "at_reset": 1}, 0,
         "step 0 (episode step 0): reset observation has NaN at index 1"),
        (1, 0, {"what": "observation", "value": -INF, "at_reset": 3}, 9,
         "step 10 (episode step 0): reset observation has -inf at index 1"),
    ],
)
def test_a_non_finite_step_stops_the_recorder_there_with_one_line(n_envs, poisoned_copy, poison, n_ok, message):
    recorder = _recorder(n_envs, poisoned_copy, **poison)
    n_steps, error = _steps_until_error(recorder, max_steps=20)
    assert n_steps == n_ok
    assert error == f"non-finite value from Pendulum-v1, env copy {poisoned_copy}, {message}"
    assert recorder._count == n_ok  # the bad step was not recorded
    if n_ok:
        assert np.isfinite(recorder.take(n_ok, 0).obs).all() and np.isfinite(recorder.take(n_ok, 0).true_rews).all()


@pytest.mark.parametrize("n_envs", [1, 3])
def test_finite_envs_run_through_the_checks_unchanged(n_envs):
    recorder = _recorder(n_envs, poisoned_copy=-1)
    obs = [recorder.reset()]
    rng = np.random.default_rng(0)
    for _ in range(12):  # over two time-limit resets
        obs.append(recorder.step(rng.uniform(-2, 2, size=(n_envs, 1)).astype(np.float32))[0])
    rec = recorder.take(12, 0)
    assert rec.dones.sum() == 2 * n_envs
    np.testing.assert_array_equal(rec.obs, np.stack(obs[:12]))  # after a done, the reset observation step returned


def test_ppo_stops_at_a_nan_observation_with_the_recorders_line_not_a_torch_error():
    ppo, _ = _ppo(None, wrap=lambda env: _Poison(env, "observation", NAN, at_step=40))
    with pytest.raises(NonFiniteError, match=r"^non-finite value from Pendulum-v1, env copy 0, step 40 \(episode "
                                             r"step 15\): observation has NaN at index 1$"):
        _collect(ppo)


@pytest.mark.parametrize(
    ("bad_value", "t", "env_copy", "message"),
    [
        (NAN, 10, 0, "step 11 of the 64-step rollout ending at agent step 64, env copy 0: reward is NaN"),
        (INF, 63, 0, "step 64 of the 64-step rollout ending at agent step 64, env copy 0: reward is inf"),
        (-INF, 0, 0, "step 1 of the 64-step rollout ending at agent step 64, env copy 0: reward is -inf"),
    ],
)
def test_a_non_finite_learned_reward_stops_ppo_before_it_is_paid(bad_value, t, env_copy, message):
    def reward_fn(obs, acts):  # (T, n_envs, 3), (T, n_envs, 1) -> (T, n_envs)
        out = obs[..., 0].astype(np.float32)
        out[t, env_copy] = bad_value
        return out

    ppo, _ = _ppo(reward_fn)
    with pytest.raises(NonFiniteError) as info:
        _collect(ppo)
    assert str(info.value) == f"the learned reward is non-finite at {message}"
    assert np.isfinite(ppo.rollout_buffer.rewards).all()  # the buffer kept the env's rewards
