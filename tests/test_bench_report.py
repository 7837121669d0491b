"""``pbrl bench report``: the statistics match values worked out by hand, unfinished and garbled trials are counted,
negative returns are normalised by a random policy's (cached, and once computed for real), and a missing sweep ends
in one line and exit 2."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from pbrl.bench import random_policy
from pbrl.bench.errors import BenchReportError
from pbrl.bench.report import build_report
from pbrl.bench.report_cli import main
from pbrl.bench.stats import compare_to_true, our_verdict, summarize_returns
from pbrl.config import TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# --- a fixture sweep: (env, reward, budget, seed, final return); None = not finished, "corrupt", "absent" ---------

HOPPER_TRUE = [900.0, 1000.0, 1200.0, 1700.0, 5000.0]  # median 1200, IQM mean(1000, 1200, 1700) = 1300
HOPPER_700 = [0.0, 600.0, 1000.0, 1100.0, 1150.0]  # median 1000, IQM mean(600, 1000, 1100) = 900
SWEEP: list[tuple[str, str, int | None, int, Any]] = [
    *[("Hopper-v5", "true", None, s, r) for s, r in enumerate(HOPPER_TRUE)],
    *[("Hopper-v5", "learned", 700, s, r) for s, r in enumerate(HOPPER_700)],
    ("Hopper-v5", "learned", 1400, 0, 1300.0), ("Hopper-v5", "learned", 1400, 1, None),
    ("Hopper-v5", "learned", 1400, 2, "corrupt"),
    *[("Reacher-v5", "true", None, s, r) for s, r in enumerate([-5.0, -4.0, -3.5])],  # median -4
    *[("Reacher-v5", "learned", 700, s, r) for s, r in enumerate([-6.0, -5.0, -4.0])],  # median -5
    ("Reacher-v5", "learned", 700, 3, "absent"),
    *[("Swimmer-v5", "true", None, s, r) for s, r in enumerate([40.0, 45.0, 50.0])],
    *[("Swimmer-v5", "learned", 350, s, r) for s, r in enumerate([30.0, 35.0, 38.0])],
    *[("Swimmer-v5", "learned", 700, s, r) for s, r in enumerate([42.0, 44.0, 47.0])],
]
# Reacher's random-policy return, as a report would have cached it: the fixture's report needs no env
REACHER_RANDOM = {"mean": -40.0, "std": 3.0, "n_episodes": 10, "returns": [-40.0] * 10, "env_seed": 10_000,
                  "action_seed": 0, "eval_steps": None, "env_kwargs": None,
                  "config": "trials/Reacher-v5__true__s0/config.json"}


def _trial_name(env: str, reward: str, budget: int | None, seed: int) -> str:
    return f"{env}__{reward}" + (f"__n{budget}" if budget else "") + f"__s{seed}"


def write_sweep(root: Path, trials=SWEEP, axes: dict[str, Any] | None = None,
                random_returns: dict[str, Any] | None = None) -> Path:
    """A sweep directory as pbrl bench writes it: bench.json and one run directory per trial that started, and
    ``random_returns`` as an earlier report cached them (random_policy.json)."""
    entries = []
    for env, reward, budget, seed, final in trials:
        name = _trial_name(env, reward, budget, seed)
        entry = {"name": name, "run_dir": f"trials/{name}", "env_id": env, "reward": reward, "n_labels": budget,
                 "seed": seed, "total_timesteps": 4096, "axes": dict(axes or {}) if reward == "learned" else {},
                 "args": []}
        entries.append(entry)
        if final == "absent":
            continue
        run = root / entry["run_dir"]
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"env_id": env, "reward": reward, "n_labels": budget or 0,
                                                     "seed": seed, "total_timesteps": 4096}))
        if final is None:
            continue
        if final == "corrupt":
            (run / "metrics.json").write_text('{"env_id": "Hopper-v5", "eval_true_return_mean": 12')
            continue
        metrics = {"env_id": env, "reward": reward, "n_labels": (budget or 0) - seed if reward == "learned" else 0,
                   "n_labels_budget": budget, "total_timesteps": 4096, "seed": seed,
                   "eval_true_return_mean": final, "eval_true_return_std": 1.0, "wall_time_s": 100.0 + 10 * seed,
                   "learned_true_return_corr": 0.9, "code_version": "0.1.0+abc1234"}
        (run / "metrics.json").write_text(json.dumps(metrics))
        # two evaluations per run: at 2048 steps half the final return, at 4096 the final return
        evals = [{"num_timesteps": 2048, "eval_true_return_mean": final / 2}, {"num_timesteps": 4096,
                                                                                "eval_true_return_mean": final}]
        (run / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    (root / "bench.json").write_text(json.dumps({"name": "fixture", "command": "pbrl bench ...", "trials": entries}))
    if random_returns is not None:
        (root / "random_policy.json").write_text(json.dumps(random_returns))
    return root


def _cell(report: dict[str, Any], env: str, reward: str, budget: int | None) -> dict[str, Any]:
    (cell,) = [c for c in report["cells"]
               if (c["env_id"], c["reward"], c["n_labels_budget"]) == (env, reward, budget)]
    return cell


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("bench") / "sweep", random_returns={"Reacher-v5": REACHER_RANDOM})


@pytest.fixture(scope="module")
def report(sweep) -> dict[str, Any]:
    return build_report(sweep)


# --- the statistics -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("returns, median, iqm, mean", [
    ([5.0], 5.0, 5.0, 5.0),
    ([1.0, 2.0, 4.0, 100.0], 3.0, 3.0, 26.75),  # n=4: IQM drops one value from each end
    ([0.0, 10.0, 20.0, 60.0, 1000.0], 20.0, 30.0, 218.0),  # n=5: the middle three
    ([100.0, 1000.0, 1100.0, 1150.0, 1400.0, 1600.0, 1700.0, 9000.0], 1275.0, 1312.5, 2131.25),  # n=8: middle four
    ([-6.0, -5.0, -4.0], -5.0, -5.0, -5.0),  # n=3: int(0.75) = 0 cut, the IQM is the mean
])
def test_median_iqm_and_mean_are_the_hand_computed_ones(returns, median, iqm, mean):
    s = summarize_returns(returns)
    assert (s["n"], s["median"], s["iqm"], s["mean"]) == (len(returns), median, pytest.approx(iqm), mean)


def test_a_single_seed_has_no_confidence_interval():
    s = summarize_returns([5.0])
    assert s["median_ci"] is None and s["iqm_ci"] is None


@pytest.mark.parametrize("returns, median_ci", [
    # resampled medians of two values are a, (a+b)/2 or b with chances 1/4, 1/2, 1/4: the 2.5/97.5 % points a, b
    ([0.0, 10.0], [0.0, 10.0]),
    # of three, the median is the lowest value in 7/27 of the resamples (>= 2 draws of it), likewise the highest
    ([0.0, 10.0, 20.0], [0.0, 20.0]),
    ([3.0, 3.0, 3.0], [3.0, 3.0]),
])
def test_the_median_ci_of_tiny_samples_is_the_hand_computed_one(returns, median_ci):
    assert summarize_returns(returns)["median_ci"] == pytest.approx(median_ci)


@pytest.mark.parametrize("returns", [[0.0, 10.0, 20.0, 60.0, 1000.0], [-6.0, -5.0, -4.0], [1.0, 2.0, 4.0, 100.0]])
def test_confidence_intervals_contain_the_estimate_and_repeat_exactly(returns):
    first, second = summarize_returns(returns), summarize_returns(returns)
    for stat in ("median", "iqm"):
        low, high = first[f"{stat}_ci"]
        assert min(returns) <= low <= first[stat] <= high <= max(returns)
        assert first[f"{stat}_ci"] == second[f"{stat}_ci"]  # a fixed bootstrap seed: the same CI every time


@pytest.mark.parametrize("learned, true, kind, value", [
    ([900.0, 1000.0, 1100.0], [1000.0, 1200.0, 1400.0], "ratio", 1000 / 1200),
    ([-6.0, -5.0, -4.0], [-5.0, -4.0, -3.5], "diff", -1.0),  # negative returns (Reacher): the difference
    ([1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], "diff", 2.0),  # a true median of 0: no ratio either
    ([1.0, 2.0], [], None, None),  # no finished baseline
])
def test_learned_is_compared_to_true_by_ratio_only_where_the_true_median_is_positive(learned, true, kind, value):
    vs = compare_to_true(learned, true)
    assert vs["kind"] == kind
    assert vs["value"] == pytest.approx(value)


def test_the_ratio_ci_contains_the_ratio_and_stays_within_what_resampling_can_give():
    learned, true = [900.0, 1000.0, 1100.0, 1300.0], [1000.0, 1200.0, 1400.0]
    vs = compare_to_true(learned, true)
    low, high = vs["ci"]
    assert min(learned) / max(true) <= low <= vs["value"] <= high <= max(learned) / min(true)
    assert compare_to_true(learned, true)["ci"] == vs["ci"]


REACHER_LEARNED, REACHER_TRUE = [-6.0, -5.0, -4.0], [-5.0, -4.0, -3.5]  # medians -5 and -4


@pytest.mark.parametrize("learned, true, random_return, kind, value", [
    (REACHER_LEARNED, REACHER_TRUE, -40.0, "normalised", (-5 + 40) / (-4 + 40)),  # 35/36
    (REACHER_LEARNED, REACHER_TRUE, -10.0, "normalised", 5 / 6),
    (REACHER_LEARNED, REACHER_TRUE, None, "diff", -1.0),  # no random-policy return: the difference
    (REACHER_LEARNED, REACHER_TRUE, -4.0, "diff", -1.0),  # true reward no better than random: no share of a gain
    (REACHER_LEARNED, REACHER_TRUE, -3.0, "diff", -1.0),
    ([900.0, 1000.0, 1100.0], [1000.0, 1200.0, 1400.0], -50.0, "ratio", 1000 / 1200),  # positive: still the ratio
])
def test_a_random_policy_return_normalises_only_where_the_true_median_is_not_positive_but_above_it(
        learned, true, random_return, kind, value):
    vs = compare_to_true(learned, true, random_return)
    assert vs["kind"] == kind
    assert vs["value"] == pytest.approx(value)


def test_the_normalised_ci_contains_the_value_and_stays_within_what_resampling_can_give():
    learned, true, r = [-7.0, -6.0, -5.0, -4.0], [-5.0, -4.0, -3.5], -40.0
    vs = compare_to_true(learned, true, r)
    low, high = vs["ci"]
    assert (min(learned) - r) / (max(true) - r) <= low <= vs["value"] <= high <= (max(learned) - r) / (min(true) - r)
    assert compare_to_true(learned, true, r)["ci"] == vs["ci"]


@pytest.mark.parametrize("vs_true, verdict", [
    ({"kind": "normalised", "value": 0.95, "ci": None}, "matches (>= 0.9x)"),
    ({"kind": "normalised", "value": 0.9, "ci": None}, "matches (>= 0.9x)"),
    ({"kind": "normalised", "value": 0.5, "ci": [0.2, 0.8]}, "below"),
    ({"kind": "ratio", "value": 1.2, "ci": None}, "matches (>= 0.9x)"),
    ({"kind": "diff", "value": -1.0, "ci": None}, "n/a (true median <= 0: see diff)"),
    ({"kind": None, "value": None, "ci": None}, None),
])
def test_our_verdict_reads_a_normalised_value_like_a_ratio(vs_true, verdict):
    assert our_verdict(vs_true) == verdict


# --- the sweep ----------------------------------------------------------------------------------------------------


def test_cells_hold_the_hand_computed_statistics(report):
    true, l700 = _cell(report, "Hopper-v5", "true", None), _cell(report, "Hopper-v5", "learned", 700)
    assert (true["n"], true["median"], true["iqm"], true["mean"]) == (5, 1200.0, pytest.approx(1300.0), 1960.0)
    assert (l700["n"], l700["median"], l700["iqm"], l700["mean"]) == (5, 1000.0, pytest.approx(900.0), 770.0)
    assert l700["vs_true"]["kind"] == "ratio" and l700["vs_true"]["value"] == pytest.approx(1000 / 1200)
    assert l700["verdict_ours"] == "below"
    assert l700["verdict_paper"].startswith("paper: nearly matches true-reward RL")
    assert l700["n_labels_used_mean"] == pytest.approx(700 - 2)  # n_labels = budget - seed in the fixture
    assert l700["wall_time_s_median"] == 120.0


def test_a_negative_baseline_is_normalised_by_the_cached_random_policy_return(sweep, report):
    reacher = _cell(report, "Reacher-v5", "learned", 700)
    assert reacher["vs_true"]["kind"] == "normalised" and reacher["vs_true"]["value"] == pytest.approx(35 / 36)
    low, high = reacher["vs_true"]["ci"]
    assert low <= 35 / 36 <= high
    assert reacher["verdict_ours"] == "matches (>= 0.9x)"
    assert report["random_policy"] == {"Reacher-v5": REACHER_RANDOM}  # only the env that needs it, as cached
    assert json.loads((sweep / "random_policy.json").read_text()) == {"Reacher-v5": REACHER_RANDOM}  # not rewritten


def test_a_sweep_whose_returns_are_positive_needs_no_random_policy(tmp_path, monkeypatch):
    def no_env(config_path):
        raise AssertionError(f"a random policy was evaluated for {config_path}")

    monkeypatch.setattr(random_policy, "evaluate_random_policy", no_env)
    sweep = write_sweep(tmp_path / "sweep", SWEEP[:10])  # Hopper only
    report = build_report(sweep)
    assert report["random_policy"] == {} and not (sweep / "random_policy.json").exists()
    assert _cell(report, "Hopper-v5", "learned", 700)["vs_true"]["kind"] == "ratio"


def test_an_env_that_cannot_be_built_keeps_the_difference_and_the_report_says_why(tmp_path, capsys):
    trials = [("Nowhere-v0", "true", None, s, r) for s, r in enumerate(REACHER_TRUE)]
    trials += [("Nowhere-v0", "learned", 700, s, r) for s, r in enumerate(REACHER_LEARNED)]
    sweep = write_sweep(tmp_path / "sweep", trials)
    assert main([str(sweep)]) == 0
    md = capsys.readouterr().out
    learned = _cell(build_report(sweep), "Nowhere-v0", "learned", 700)
    assert learned["vs_true"]["kind"] == "diff" and learned["verdict_ours"].startswith("n/a")
    (line,) = [line for line in md.splitlines() if line.startswith("- Nowhere-v0: no R")]
    assert "could not be evaluated (EnvSpecError: unknown env id 'Nowhere-v0'" in line
    assert "-1.00 (diff)" in md
    assert not (sweep / "random_policy.json").exists()  # a later report tries again


def test_unfinished_and_corrupt_trials_are_counted_not_dropped(report):
    assert (report["n_trials"], report["n_finished"], report["n_not_finished"], report["n_unreadable"]) == \
        (len(SWEEP), len(SWEEP) - 3, 2, 1)
    l1400 = _cell(report, "Hopper-v5", "learned", 1400)
    assert (l1400["n_trials"], l1400["n_finished"], l1400["n_not_finished"], l1400["n_unreadable"]) == (3, 1, 1, 1)
    assert l1400["median_ci"] is None and l1400["vs_true"]["ci"] is None  # one seed: no CI
    assert l1400["verdict_ours"] == "matches (>= 0.9x)"  # 1300 / 1200
    status = {t["name"]: (t["status"], t["reason"]) for t in report["trials"]}
    assert status["Hopper-v5__learned__n1400__s2"][0] == "unreadable"
    assert "metrics.json" in status["Hopper-v5__learned__n1400__s2"][1]
    assert status["Reacher-v5__learned__n700__s3"] == ("not finished", "no run directory (not started)")
    assert _cell(report, "Reacher-v5", "learned", 700)["n_trials"] == 4


def test_the_paper_verdict_says_nothing_where_reference_md_says_nothing(report):
    assert _cell(report, "Swimmer-v5", "learned", 350)["verdict_paper"] is None
    assert _cell(report, "Swimmer-v5", "true", None)["verdict_paper"] is None


def test_cells_are_sorted_by_env_then_budget_with_true_reward_first(report):
    keys = [(c["env_id"], c["n_labels_budget"]) for c in report["cells"]]
    assert keys == [("Hopper-v5", None), ("Hopper-v5", 700), ("Hopper-v5", 1400), ("Reacher-v5", None),
                    ("Reacher-v5", 700), ("Swimmer-v5", None), ("Swimmer-v5", 350), ("Swimmer-v5", 700)]


def test_learning_curves_are_the_median_over_seeds_per_step(report):
    curve = _cell(report, "Swimmer-v5", "learned", 700)["curve"]
    assert curve["num_timesteps"] == [2048, 4096]
    assert curve["median"] == [22.0, 44.0] and curve["n_seeds"] == [3, 3]


def test_the_report_is_the_same_on_every_run(sweep, report):
    assert build_report(sweep) == report


@pytest.mark.parametrize("axes", [{"labeler": "mistake0.1"}, {"ppo": {"n_envs": 8}, "net": [64, 64]}])
def test_learned_cells_with_extra_axes_find_their_env_baseline(tmp_path, axes):
    trials = [("Hopper-v5", "true", None, s, r) for s, r in enumerate([1000.0, 1200.0])]
    trials += [("Hopper-v5", "learned", 700, s, r) for s, r in enumerate([1100.0, 1300.0])]
    report = build_report(write_sweep(tmp_path / "sweep", trials, axes=axes))
    learned = _cell(report, "Hopper-v5", "learned", 700)
    assert learned["axes"] == axes
    assert learned["vs_true"]["value"] == pytest.approx(1200 / 1100)
    assert learned["baseline"] == {"env_id": "Hopper-v5", "axes": {}}


# --- the command --------------------------------------------------------------------------------------------------


def test_the_command_writes_the_table_json_and_plots(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert stdout == md
    assert f"{len(SWEEP) - 3} of {len(SWEEP)} trials finished (2 not finished, 1 unreadable)" in md
    assert "0.1.0+abc1234" in md
    assert "| Hopper-v5 | learned | 700 |" in md and "0.83x [" in md
    assert "| Reacher-v5 | learned | 700 |" in md and "0.97x of (true - random) [" in md and "(no CI: 1 seed)" in md
    assert "- Reacher-v5: R = -40.0 (std 3.00) over 10 episodes of the env's time limit; env seed 10,000" in md
    assert "Hopper-v5__learned__n1400__s1" in md and "Hopper-v5__learned__n1400__s2" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 8  # the head and one row per env x budget
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(build_report(sweep)))
    for png in ("label_efficiency.png", "learning_curves.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000


def test_the_report_goes_under_dir_by_default(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "sweep", SWEEP[:10])
    assert main([str(sweep)]) == 0
    assert (sweep / "report" / "report.md").is_file()


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no sweep directory at"),
    (lambda d: d.mkdir(), "has no bench.json"),
    (lambda d: (d.mkdir(), (d / "bench.json").write_text("{not json")), "is not readable JSON"),
    (lambda d: (d.mkdir(), (d / "bench.json").write_text('{"name": "x"}')), "no list of trials"),
    (lambda d: (d.mkdir(), (d / "bench.json").write_text('{"trials": [{"name": "t"}]}')), "lacks env_id, reward"),
    (lambda d: (d.mkdir(), (d / "bench.json").write_text(
        '{"trials": [{"name": "t", "env_id": "Hopper-v5", "reward": "true", "axes": [1]}]}')), "axes that are not"),
])
def test_a_missing_or_garbled_sweep_ends_in_one_line_and_exit_2(tmp_path, capsys, setup, message):
    sweep = tmp_path / "sweep"
    setup(sweep)
    assert main([str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pbrl bench report: error: ") and message in err[0], err
    with pytest.raises(BenchReportError):
        build_report(sweep)


def test_a_sweep_where_nothing_has_finished_yet_still_reports(tmp_path, capsys):
    trials = [("Hopper-v5", "true", None, 0, None), ("Hopper-v5", "learned", 700, 0, None),
              ("Reacher-v5", "learned", 700, 0, "absent")]
    sweep = write_sweep(tmp_path / "sweep", trials)
    assert main([str(sweep)]) == 0
    md = capsys.readouterr().out
    assert "0 of 3 trials finished (3 not finished, 0 unreadable)" in md
    assert "— (no finished seed)" in md and "no true-reward baseline" in md
    assert (sweep / "report" / "label_efficiency.png").read_bytes()[:8] == PNG_MAGIC


# --- the random policy, for real ----------------------------------------------------------------------------------


def test_the_random_policy_return_of_a_real_env_is_computed_once_cached_and_repeats(tmp_path):
    trials = [("Reacher-v5", "true", None, s, r) for s, r in enumerate([-4.0, -3.6, -3.8])]
    trials += [("Reacher-v5", "learned", 700, s, r) for s, r in enumerate([-4.4, -4.2, -4.3])]
    sweep = write_sweep(tmp_path / "sweep", trials)
    for seed in (0, 1, 2):  # the trials' configs as pbrl train saves them
        name = _trial_name("Reacher-v5", "true", None, seed)
        TrainConfig.of(env_id="Reacher-v5", reward="true", seed=seed).save(sweep / "trials" / name / "config.json")

    first = build_report(sweep)
    r = first["random_policy"]["Reacher-v5"]
    # pbrl's Reacher has no torque penalty: random actions about -9 over its 50 steps, trained policies about -4
    assert math.isfinite(r["mean"]) and r["mean"] < -6
    assert (r["n_episodes"], r["env_seed"], r["config"]) == (10, 10_000, "trials/Reacher-v5__true__s0/config.json")
    assert _cell(first, "Reacher-v5", "learned", 700)["vs_true"]["kind"] == "normalised"
    cache = sweep / "random_policy.json"
    cached = cache.read_text()
    assert json.loads(cached)["Reacher-v5"] == r

    assert build_report(sweep) == first and cache.read_text() == cached  # read from the cache, not rewritten
    cache.unlink()
    assert build_report(sweep) == first  # computed again: the same episodes and actions, the same R


def test_a_panel_with_only_the_baseline_finished_says_so_and_shows_no_budget_axis(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from pbrl.bench.plots import plot_label_efficiency

    trials = [("Hopper-v5", "true", None, 0, 1000.0), ("Hopper-v5", "learned", 700, 0, None),
              ("Reacher-v5", "true", None, 0, -4.0), ("Reacher-v5", "learned", 700, 0, -4.2)]
    report = build_report(write_sweep(tmp_path / "sweep", trials, random_returns={"Reacher-v5": REACHER_RANDOM}))
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    plot_label_efficiency(report, tmp_path / "x.png")
    panels = {ax.get_title(): ax for ax in drawn[0].axes if ax.get_title()}
    texts = {title: [t.get_text() for t in ax.texts] for title, ax in panels.items()}
    assert texts == {"Hopper-v5": ["no learned-reward cell finished yet"], "Reacher-v5": []}
    assert list(panels["Hopper-v5"].get_xticks()) == []
    assert [t.get_text() for t in panels["Reacher-v5"].get_xticklabels()] == ["700"]


@pytest.mark.parametrize("steps,text", [(0, "0"), (500, "500"), (100_000, "100k"), (250_000, "250k"),
                                        (1_000_000, "1M"), (1_500_000, "1.5M")])
def test_step_ticks_read_as_short_counts(steps, text):
    from pbrl.bench.plots import steps_text

    assert steps_text(steps) == text


def test_learning_curve_panels_label_their_steps_in_k_and_m(report, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from pbrl.bench.plots import plot_learning_curves

    longer = copy.deepcopy(report)  # evaluations at 204,800 and 409,600 steps: 100 times the fixture's
    for cell in longer["cells"]:
        if cell["curve"]:
            cell["curve"]["num_timesteps"] = [100 * n for n in cell["curve"]["num_timesteps"]]
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    plot_learning_curves(longer, tmp_path / "x.png")
    drawn[0].canvas.draw()
    labels = [t.get_text() for ax in drawn[0].axes if ax.get_title() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(label[-1] in "kM" for label in labels), labels
    assert all(ax.xaxis.get_offset_text().get_text() == "" for ax in drawn[0].axes)  # no "1e6" beside the axis
