"""Tests for ``pbrl.reward`` (the ensemble base and the MLPs): the Bradley-Terry loss with its random-answer term,
the ensemble, and the checks that keep NaN and inf out of its statistics and checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pbrl.finite import NonFiniteError, assert_finite_parameters, parameters_are_finite
from pbrl.reward import (
    RANDOM_ANSWER_PROB,
    RewardEnsemble,
    RewardModelConfig,
    bradley_terry_loss,
    load_ensemble,
    preference_probability,
)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _p(diff: float) -> float:
    """The paper's P(first preferred) with 10 % random answers, by hand."""
    return 0.9 * _sigmoid(diff) + 0.05


# --- Bradley-Terry loss and preference probability -------------------------------------------------------

@pytest.mark.parametrize(
    ("r1", "r2", "label", "expected_p", "expected_loss"),
    [
        # equal returns: P = 0.5 whatever the label, loss ln 2
        (3.0, 3.0, 1.0, 0.5, math.log(2.0)),
        (3.0, 3.0, 0.0, 0.5, math.log(2.0)),
        (3.0, 3.0, 0.5, 0.5, math.log(2.0)),
        # R1 - R2 = 2
        (2.0, 0.0, 1.0, _p(2.0), -math.log(_p(2.0))),
        (2.0, 0.0, 0.0, _p(2.0), -math.log(1.0 - _p(2.0))),
        (2.0, 0.0, 0.5, _p(2.0), -0.5 * math.log(_p(2.0)) - 0.5 * math.log(1.0 - _p(2.0))),
        # R1 - R2 = -1.5, label 0 (the second is preferred)
        (-1.0, 0.5, 0.0, _p(-1.5), -math.log(1.0 - _p(-1.5))),
        (-1.0, 0.5, 1.0, _p(-1.5), -math.log(_p(-1.5))),
    ],
)
def test_bradley_terry_matches_hand_computed(r1, r2, label, expected_p, expected_loss):
    r1_t = torch.tensor([r1], dtype=torch.float64)
    r2_t = torch.tensor([r2], dtype=torch.float64)
    p = preference_probability(r1_t, r2_t)
    loss = bradley_terry_loss(r1_t, r2_t, torch.tensor([label], dtype=torch.float64))
    assert p.shape == (1,) and loss.shape == (1,)
    assert p.item() == pytest.approx(expected_p, rel=1e-9)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-9)


def test_random_answer_prob_is_ten_percent():
    assert RANDOM_ANSWER_PROB == pytest.approx(0.1)


@pytest.mark.parametrize("random_answer_prob", [0.0, 0.1, 0.3])
def test_preference_probability_uses_random_answer_prob(random_answer_prob):
    p = preference_probability(torch.tensor([1.0]), torch.tensor([0.0]), random_answer_prob)
    expected = (1 - random_answer_prob) * _sigmoid(1.0) + random_answer_prob / 2
    assert p.item() == pytest.approx(expected, rel=1e-6)


def test_loss_is_per_pair_and_broadcasts_over_members():
    rng = np.random.default_rng(0)
    r1 = torch.as_tensor(rng.normal(size=(3, 5)))  # (n_members, n_pairs)
    r2 = torch.as_tensor(rng.normal(size=(3, 5)))
    labels = torch.as_tensor(rng.choice([0.0, 0.5, 1.0], size=5))
    loss = bradley_terry_loss(r1, r2, labels)
    assert loss.shape == (3, 5)
    for m in range(3):
        for i in range(5):
            p = _p((r1[m, i] - r2[m, i]).item())
            lab = labels[i].item()
            expected = -(lab * math.log(p) + (1 - lab) * math.log(1 - p))
            assert loss[m, i].item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("diff", [1e3, -1e3, 1e30, -1e30, 3e38, -3e38])
def test_preference_probability_bounded_for_huge_logits(diff, dtype):
    r1 = torch.tensor([diff], dtype=dtype)
    r2 = torch.tensor([0.0], dtype=dtype)
    p = preference_probability(r1, r2)
    assert torch.isfinite(p).all()
    assert 0.05 - 1e-6 <= p.item() <= 0.95 + 1e-6
    assert p.item() == pytest.approx(0.95 if diff > 0 else 0.05, abs=1e-6)
    for label in (0.0, 0.5, 1.0):
        loss = bradley_terry_loss(r1, r2, torch.tensor([label], dtype=dtype))
        assert torch.isfinite(loss).all()
        # the random-answer term caps the loss of a confident wrong answer at -log(0.05)
        assert loss.item() <= -math.log(0.05) + 1e-4


def test_loss_gradient_finite_for_huge_logits():
    r1 = torch.tensor([1e6, -1e6, 0.0], requires_grad=True)
    loss = bradley_terry_loss(r1, torch.zeros(3), torch.tensor([0.0, 1.0, 0.5])).sum()
    loss.backward()
    assert torch.isfinite(r1.grad).all()


# --- RewardEnsemble ---------------------------------------------------------------------------------------

def _ensemble(obs_dim=3, act_dim=2, n_members=3, hidden=16, seed=0) -> RewardEnsemble:
    torch.manual_seed(seed)
    cfg = RewardModelConfig(obs_dim=obs_dim, act_dim=act_dim, n_members=n_members, hidden=hidden)
    return RewardEnsemble(cfg)


@pytest.mark.parametrize(
    ("n_members", "batch", "steps", "obs_dim", "act_dim"),
    [(1, 1, 1, 1, 1), (3, 4, 5, 3, 2), (5, 2, 7, 11, 4)],
)
def test_ensemble_output_shape(n_members, batch, steps, obs_dim, act_dim):
    rng = np.random.default_rng(1)
    model = _ensemble(obs_dim, act_dim, n_members)
    obs = rng.normal(size=(batch, steps, obs_dim)).astype(np.float32)
    acts = rng.normal(size=(batch, steps, act_dim)).astype(np.float32)
    out = model(obs, acts)  # (n_members, B, T)
    assert out.shape == (n_members, batch, steps)
    assert model.raw(obs, acts).shape == (n_members, batch, steps)
    assert model.mean_reward(obs, acts).shape == (batch, steps)
    assert model.segment_returns(obs, acts).shape == (n_members, batch)
    np.testing.assert_allclose(model.segment_returns(obs, acts), out.detach().sum(-1).numpy(), rtol=1e-5)


def test_ensemble_members_differ():
    rng = np.random.default_rng(2)
    model = _ensemble()
    out = model(rng.normal(size=(4, 5, 3)), rng.normal(size=(4, 5, 2))).detach()
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("n_members", [1, 3])
def test_fit_output_stats_normalises_each_member(n_members):
    rng = np.random.default_rng(3)
    model = _ensemble(n_members=n_members)
    obs = rng.normal(loc=2.0, scale=3.0, size=(200, 3)).astype(np.float32)
    acts = rng.normal(size=(200, 2)).astype(np.float32)
    model.fit_input_stats(obs, acts)
    before = model(obs, acts).detach()
    assert not torch.allclose(before.std(dim=1), torch.ones(n_members), atol=1e-2)  # the test is not vacuous
    model.fit_output_stats(obs, acts)
    out = model(obs, acts).detach().double()  # (n_members, N)
    np.testing.assert_allclose(out.mean(dim=1).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(dim=1).numpy(), 1.0, atol=1e-4)
    # the reward PPO is paid is the average of normalised members
    np.testing.assert_allclose(model.mean_reward(obs, acts), out.mean(dim=0).numpy(), atol=1e-5)


def test_fit_input_stats_standardises_features():
    rng = np.random.default_rng(4)
    model = _ensemble()
    obs = rng.normal(loc=[5.0, -3.0, 0.0], scale=[10.0, 0.1, 1.0], size=(300, 3))
    acts = rng.normal(loc=1.0, scale=2.0, size=(300, 2))
    model.fit_input_stats(obs, acts)
    x = model.features(obs, acts).double()
    np.testing.assert_allclose(x.mean(dim=0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(dim=0).numpy(), 1.0, atol=1e-4)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    model = _ensemble(obs_dim=4, act_dim=2, n_members=3)
    obs = rng.normal(size=(50, 4)).astype(np.float32)
    acts = rng.normal(size=(50, 2)).astype(np.float32)
    model.fit_input_stats(obs, acts)
    model.fit_output_stats(obs, acts)
    path = tmp_path / "reward.pt"
    model.save(path, extra={"round": 7})

    loaded, extra = RewardEnsemble.load(path)
    assert extra == {"round": 7}
    assert loaded.cfg == model.cfg
    test_obs = rng.normal(size=(2, 6, 4)).astype(np.float32)
    test_acts = rng.normal(size=(2, 6, 2)).astype(np.float32)
    torch.testing.assert_close(loaded(test_obs, test_acts), model(test_obs, test_acts), rtol=0, atol=0)
    # buffers (input and output statistics) travel with the weights
    for name in ("in_mean", "in_std", "out_mean", "out_std"):
        torch.testing.assert_close(getattr(loaded, name), getattr(model, name), rtol=0, atol=0)


def test_save_without_extra_loads_empty_dict(tmp_path):
    model = _ensemble()
    model.save(tmp_path / "m.pt")
    _, extra = RewardEnsemble.load(tmp_path / "m.pt")
    assert extra == {}
    loaded, _ = load_ensemble(tmp_path / "m.pt")  # the kind the checkpoint names
    assert type(loaded) is RewardEnsemble and loaded.cfg == model.cfg


def test_a_checkpoint_saved_before_kinds_were_recorded_loads_as_the_mlp(tmp_path):
    """Run directories made before the reward package saved the MLP without a "kind": they still load."""
    from dataclasses import asdict

    model = _ensemble()
    torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "extra": {"l2": 0.5}}, tmp_path / "m.pt")
    loaded, extra = load_ensemble(tmp_path / "m.pt")
    assert type(loaded) is RewardEnsemble and extra == {"l2": 0.5} and not loaded.training
    obs, acts = np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)
    torch.testing.assert_close(loaded(obs, acts), model(obs, acts), rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_members": 0}, {"hidden": 0}, {"n_layers": 0}],
)
def test_invalid_config_raises(kwargs):
    with pytest.raises(ValueError):
        RewardModelConfig(obs_dim=3, act_dim=2, **kwargs)


def test_heldout_corr_script_groups_learned_returns_by_score(tmp_path):
    """scripts/tools/heldout_corr.py on a run's saved model and held-out sample: the correlation the loop reports, and
    where true returns are a few scores (Atari), the mean learned return of each."""
    from conftest import load_script

    from pbrl.heldout import HeldOutSample
    from pbrl.reward.diagnostics import learned_and_true_returns, learned_true_corr
    from pbrl.run_dir import RunDir
    from pbrl.segments import Segment

    rng = np.random.default_rng(3)
    run = RunDir(tmp_path)
    model = _ensemble(obs_dim=3, act_dim=1, n_members=2)
    model.save(run.reward_model)
    scores = rng.choice([-1.0, 0.0, 1.0], size=30)
    segs = [Segment(obs=rng.normal(size=(4, 3)).astype(np.float32) + s, acts=np.zeros((4, 1), np.float32),
                    true_rews=np.array([s, 0.0, 0.0, 0.0]), policy_step=i, episode=i, env_step=0)
            for i, s in enumerate(scores)]
    sample = HeldOutSample(capacity=100, rate=1.0)
    sample.split(segs, rng)
    sample.save(run.heldout)

    out = load_script("tools/heldout_corr").heldout_corr(str(tmp_path))
    learned, true = learned_and_true_returns(model, sample.segments())
    groups = out["mean_learned_return_by_true_return"]
    assert out["n_heldout_segments"] == 30 and set(groups) == {"-1", "0", "1"}
    assert [groups[k]["n"] for k in ("-1", "0", "1")] == [int((scores == v).sum()) for v in (-1, 0, 1)]
    assert groups["1"]["mean"] == pytest.approx(learned[true == 1].mean(), abs=1e-4)
    assert groups["-1"]["mean"] == pytest.approx(learned[true == -1].mean(), abs=1e-4)
    assert out["learned_true_return_corr"] == pytest.approx(learned_true_corr(model, sample.segments()))
    # returns of many values (MuJoCo) are not grouped
    sample = HeldOutSample(capacity=100, rate=1.0)
    sample.split([Segment(**{**s.__dict__, "true_rews": rng.normal(size=4)}) for s in segs], rng)
    sample.save(run.heldout)
    assert "mean_learned_return_by_true_return" not in load_script("tools/heldout_corr").heldout_corr(str(tmp_path))


# --- non-finite statistics and parameters -----------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


def _cnn_ensemble():
    from pbrl.reward import CnnRewardConfig, CnnRewardEnsemble

    torch.manual_seed(0)
    return CnnRewardEnsemble(CnnRewardConfig(obs_shape=(2, 48, 48), act_dim=3, n_members=2, filters=4, hidden=8))


@pytest.mark.parametrize(
    ("make", "tensor", "index", "value"),
    [
        (_ensemble, "net.weights.1", (2, 3, 4), NAN),
        (_ensemble, "net.biases.0", (0, 0, 5), INF),
        (_ensemble, "out_std", (1,), -INF),  # buffers are saved too
        (_ensemble, "in_mean", (0,), NAN),
        (_cnn_ensemble, "net.1.fc.weight", (5, 6), NAN),
        (_cnn_ensemble, "net.0.norm.running_var", (3,), INF),  # beside an integer buffer (num_batches_tracked)
    ],
)
def test_the_parameter_check_passes_a_fresh_ensemble_and_names_a_spoilt_value(make, tensor, index, value):
    model = make()
    assert parameters_are_finite(model)
    assert_finite_parameters(model)
    with torch.no_grad():
        dict([*model.named_parameters(), *model.named_buffers()])[tensor][index] = value
    assert not parameters_are_finite(model)
    with pytest.raises(NonFiniteError) as info:
        assert_finite_parameters(model)
    kind = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    shown = index[0] if len(index) == 1 else index
    assert str(info.value) == ("the reward model's parameters became non-finite after fitting "
                               f"({tensor} has {kind} at index {shown})")


def _nan_obs(model, obs, acts):
    obs[17, 1] = NAN


def _inf_act(model, obs, acts):
    acts[0, 1] = INF


def _huge_obs(model, obs, acts):
    obs[:, 0] = 3e38  # finite, but their sum is not


def _nan_weight(model, obs, acts):
    with torch.no_grad():
        model.net.weights[0][0, 1, 2] = NAN


@pytest.mark.parametrize(
    ("stats", "spoil", "why"),
    [
        ("input", _nan_obs, "observation has NaN at index 1 (step 17 of the 200 they are fitted on)"),
        ("input", _inf_act, "action has inf at index 1 (step 0 of the 200 they are fitted on)"),
        ("input", _huge_obs, "the steps are finite, but too large for float32 statistics"),
        ("output", _nan_obs, "observation has NaN at index 1 (step 17 of the 200 they are fitted on)"),
        ("output", _inf_act, "action has inf at index 1 (step 0 of the 200 they are fitted on)"),
        ("output", _huge_obs, "the steps are finite, but too large for float32 statistics"),
        ("output", _nan_weight, "its parameters are non-finite (net.weights.0 has NaN at index (0, 1, 2))"),
    ],
)
def test_non_finite_statistics_raise_with_their_cause_and_keep_the_old_ones(stats, spoil, why):
    rng = np.random.default_rng(6)
    model = _ensemble()
    obs = rng.normal(size=(200, 3)).astype(np.float32)
    acts = rng.normal(size=(200, 2)).astype(np.float32)
    model.fit_input_stats(obs, acts)
    model.fit_output_stats(obs, acts)
    before = {name: b.clone() for name, b in model.named_buffers()}
    spoil(model, obs, acts)
    with pytest.raises(NonFiniteError) as info:
        getattr(model, f"fit_{stats}_stats")(obs, acts)
    assert str(info.value) == f"the reward model's {stats} statistics are non-finite: {why}"
    for name, b in model.named_buffers():
        torch.testing.assert_close(b, before[name], rtol=0, atol=0)


def test_an_observation_only_ensemble_ignores_actions_and_survives_a_save(tmp_path):
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(obs_dim=4, act_dim=2, n_members=2, hidden=8, use_actions=False))
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    a1 = np.zeros((5, 2), dtype=np.float32)
    a2 = np.full((5, 2), 3.0, dtype=np.float32)
    model.fit_input_stats(obs, a2)
    assert model.in_mean.shape == (4,)
    assert np.allclose(model.mean_reward(obs, a1), model.mean_reward(obs, a2))
    with_actions = RewardEnsemble(RewardModelConfig(obs_dim=4, act_dim=2, n_members=2, hidden=8))
    assert not np.allclose(with_actions.mean_reward(obs, a1), with_actions.mean_reward(obs, a2))
    model.save(tmp_path / "r.pt")
    loaded, _ = load_ensemble(tmp_path / "r.pt")
    assert np.allclose(loaded.mean_reward(obs, a2), model.mean_reward(obs, a1))


def _counting_raw(model):
    """Count the steps ``model.raw`` evaluates (the cost ``MemberReturns`` saves)."""
    calls = []
    raw = model.raw

    def counted(obs, acts):
        calls.append(int(np.prod(np.shape(obs)[:-1])))
        return raw(obs, acts)

    model.raw = counted
    return calls


def test_member_returns_evaluate_each_segment_once_while_the_ensemble_stays(one_torch_thread):
    from pbrl.segments import MemberReturns, Segment, stack

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = RewardEnsemble(RewardModelConfig(obs_dim=3, act_dim=2, n_members=3, hidden=8))

    def segs(n):
        return [Segment(obs=rng.normal(size=(5, 3)).astype(np.float32), acts=rng.normal(size=(5, 2)).astype(np.float32),
                        true_rews=rng.normal(size=5), policy_step=0, episode=i, env_step=0) for i in range(n)]

    old, new = segs(6), segs(2)
    calls = _counting_raw(model)
    cache = MemberReturns()
    first = cache.get(model, old)
    with torch.no_grad():
        direct = model.raw(*stack(old)).sum(-1).numpy()
    np.testing.assert_allclose(first, direct, rtol=1e-5, atol=1e-6)
    assert calls == [30, 30]  # the cache's pass and the direct one
    # the same segments again, one of them renamed by the store (same arrays): nothing evaluated
    again = cache.get(model, [old[0].with_id(7), *old[1:]])
    np.testing.assert_array_equal(again, first)
    # after new rollouts: only the new segments cost a pass; retain forgets the ones that left the buffer
    now = old[3:] + new
    cache.retain(now)
    assert len(cache) == 3
    out = cache.get(model, now)
    assert calls[2:] == [10] and len(cache) == len(now)
    np.testing.assert_array_equal(out[:, :3], first[:, 3:])
    # the ensemble changed: everything is evaluated again
    cache.clear()
    cache.get(model, now)
    assert calls[3:] == [25]
    assert cache.get(model, []).shape == (3, 0)


def test_normalised_returns_from_raw_ones_match_segment_returns(one_torch_thread):
    torch.manual_seed(1)
    model = RewardEnsemble(RewardModelConfig(obs_dim=3, act_dim=2, n_members=3, hidden=8))
    rng = np.random.default_rng(1)
    obs, acts = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(40, 2)).astype(np.float32)
    r = model.fit_output_stats(obs * 3 + 1, acts)
    assert tuple(r.shape) == (3, 40)
    seg_obs, seg_acts = obs.reshape(8, 5, 3), acts.reshape(8, 5, 2)
    with torch.no_grad():
        raw_sums = model.raw(seg_obs, seg_acts).sum(-1).numpy()
    np.testing.assert_allclose(model.normalised_returns(raw_sums, 5), model.segment_returns(seg_obs, seg_acts),
                               rtol=1e-4, atol=1e-4)
