"""The config tree: each knob declared once (its default, doc, flag and check), ``--help`` showing the defaults of the
tree and of the env-family registry, checks driven by the fields' metadata, and config.json in the flat format that
run directories have always had."""

from __future__ import annotations

import ast
import inspect
import json
import math
import re
from pathlib import Path

import pytest

from pbrl.cli import build_parser
from pbrl.config import GROUPS, KNOBS, ConfigError, TrainConfig, default_of, family_defaults, flag_of, registry_values

ROOT = Path(__file__).resolve().parents[1]


def _train_help(env_id: str | None = None) -> str:
    parser = build_parser(env_id)
    train = next(a for a in parser._subparsers._actions if a.dest == "command").choices["train"]
    return re.sub(r"\s+", " ", train.format_help()).split("options:", 1)[1]


def _entry(text: str, name: str) -> str:
    """The help of the knob ``name``, up to the next flag with a metavar."""
    after = text.split(f"{flag_of(KNOBS[name][1])} {name.upper()} ", 1)[1]
    return re.split(r" --[a-z0-9-]+ [A-Z][A-Z0-9_]+ ", after, maxsplit=1)[0]


def _shown(value) -> str:
    return "inf" if isinstance(value, float) and math.isinf(value) else json.dumps(value) if value == "" else str(value)


def test_every_knob_has_a_flat_name_a_flag_and_a_doc_and_no_two_share_a_flag():
    flags = [flag_of(f) for _, f in KNOBS.values()]
    assert len(flags) == len(set(flags))
    for name, (_, f) in KNOBS.items():
        assert f.metadata["help"], name
        assert flag_of(f).startswith("--")


def test_help_shows_every_knobs_default_and_each_family_or_task_value():
    text = _train_help()
    for name, (_, f) in KNOBS.items():
        if not f.metadata["cli"]:
            continue
        assert f"{flag_of(f)} {name.upper()}" in text, name
        entry = _entry(text, name)
        assert f"(default: {_shown(default_of(f))}" in entry, (name, entry)
        for where, value in registry_values(name):
            assert f"{where}: {_shown(value)}" in entry, (name, where, entry)


def test_the_registry_changes_only_knobs_of_the_tree():
    from pbrl.families import FAMILIES, TASKS

    named = {k for fam in FAMILIES.values() for k in fam.method} | {k for t in TASKS.values() for k in t.method}
    assert named <= set(KNOBS)
    assert registry_values("segment_length")  # the Atari games' and the backflip's segments


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "pbrl/HopperBackflip-v0", "Hopper-v5"])
def test_help_for_one_env_shows_the_values_that_env_gets(env_id):
    text = _train_help(env_id)
    values = family_defaults(env_id, {})
    assert values  # each of these envs has values of its own
    for name, value in values.items():
        entry = _entry(text, name)
        assert f"(default for {env_id}: {_shown(value)})" in entry, (name, entry)


def test_help_for_pong_says_segments_of_25_steps():
    assert "steps; a knob, not seconds) (default for ALE/Pong-v5: 25)" in _train_help("ALE/Pong-v5")


# The sub-configs of the modules that use a knob take its default from the tree rather than a literal of their own:
# (module, class, field) -> the knob's flat name.
_SUB_CONFIG_FIELDS = {
    ("pbrl.queries", "LabelSchedule", "initial_fraction"): "initial_label_fraction",
    ("pbrl.queries", "LabelSchedule", "rate_constant"): "label_rate_constant",
    ("pbrl.reward.trainer", "TrainerConfig", "lr"): "reward_lr",
    ("pbrl.reward.trainer", "TrainerConfig", "batch_size"): "reward_batch_size",
    ("pbrl.reward.trainer", "TrainerConfig", "l2_init"): "l2_init",
    ("pbrl.reward.trainer", "TrainerConfig", "l2_max"): "l2_max",
    ("pbrl.reward.trainer", "TrainerConfig", "max_batches"): "fit_max_batches",
    ("pbrl.reward.mlp", "RewardModelConfig", "n_members"): "n_members",
    ("pbrl.reward.mlp", "RewardModelConfig", "hidden"): "reward_hidden",
    ("pbrl.reward.cnn", "CnnRewardConfig", "n_members"): "n_members",
    ("pbrl.reward.cnn", "CnnRewardConfig", "hidden"): "reward_hidden",
}


def test_the_teacher_of_the_labelers_is_the_trees():
    from pbrl.config import TeacherConfig
    from pbrl.labelers import TeacherConfig as LabelersTeacher

    assert LabelersTeacher is TeacherConfig


def _class_defaults(module: str, cls: str) -> dict[str, ast.expr]:
    import importlib

    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    return {s.target.id: s.value for s in node.body if isinstance(s, ast.AnnAssign) and s.value is not None}


@pytest.mark.parametrize("where,knob", sorted(_SUB_CONFIG_FIELDS.items()))
def test_sub_configs_take_their_defaults_from_the_tree(where, knob):
    import importlib

    module, cls, name = where
    value = _class_defaults(module, cls)[name]
    assert not isinstance(value, ast.Constant), f"{cls}.{name} repeats the default of --{knob} as a literal"
    default = getattr(getattr(importlib.import_module(module), cls), name)
    assert default == default_of(KNOBS[knob][1])


def test_no_module_repeats_a_knobs_default_as_a_literal():
    """A dataclass field anywhere in pbrl/ named like a knob (its field or flat name) whose default is a literal
    equal to the knob's is a second definition of that default."""
    by_name = {}
    for name, (_, f) in KNOBS.items():
        by_name[name] = by_name[f.name] = default_of(f)
    repeats = []
    for path in sorted((ROOT / "pbrl").rglob("*.py")):
        if path.parent.name == "config":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for stmt in node.body:
                if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                        and isinstance(stmt.value, ast.Constant) and stmt.target.id in by_name
                        and stmt.value.value == by_name[stmt.target.id] and stmt.value.value not in (None, "")):
                    repeats.append(f"{path.relative_to(ROOT)}: {node.name}.{stmt.target.id}")
    assert not repeats


_BAD = {"positive": 0, "nonneg": -1, "two_or_more": 1, "share": 1.5, "share_below_1": 1.0, "seed": -1}


@pytest.mark.parametrize("name", [n for n, (g, f) in KNOBS.items() if f.metadata["check"] in _BAD and g != "teacher"])
def test_a_bad_value_of_any_checked_knob_is_one_line_naming_its_flag(name, tiny_config):
    cfg = tiny_config().replace(**{name: _BAD[KNOBS[name][1].metadata["check"]]})
    with pytest.raises(ConfigError, match=re.escape(flag_of(KNOBS[name][1]))):
        cfg.validate()


def test_an_initial_l2_above_its_bound_is_one_line_naming_both_flags(tiny_config):
    tiny_config().replace(l2_init=0.01, l2_max=0.01).validate()  # at the bound is fine
    with pytest.raises(ConfigError, match="--l2-init 0.1 is above --l2-max 0.01"):
        tiny_config().replace(l2_init=0.1, l2_max=0.01).validate()


@pytest.mark.parametrize("name", [n for n, (g, f) in KNOBS.items() if f.metadata["choices"]])
def test_a_value_outside_a_knobs_choices_is_one_line_with_the_choices(name, tiny_config):
    cfg = tiny_config().replace(**{name: "no-such-choice"})
    with pytest.raises(ConfigError, match="must be one of"):
        cfg.validate()


@pytest.mark.parametrize("name,value", [("teacher_gamma", 0.0), ("teacher_beta", -1.0), ("teacher_eps_skip", 2.0)])
def test_the_teacher_checks_itself_when_built(name, value):
    with pytest.raises(ConfigError, match=f"teacher {KNOBS[name][1].name} must be"):
        TrainConfig.of(**{name: value})


def test_flat_names_reach_their_groups_and_back():
    cfg = TrainConfig.of(env_id="Pendulum-v1", reward_lr=1e-3, segment_length=10, teacher_gamma=0.9, n_envs=2)
    assert (cfg.reward_model.lr, cfg.method.segment_length, cfg.teacher.gamma, cfg.ppo.n_envs) == (1e-3, 10, 0.9, 2)
    assert {cfg.value(n) for n in ("reward_lr", "segment_length")} == {1e-3, 10}
    assert set(GROUPS) == {"method", "reward_model", "teacher", "ppo"}
    with pytest.raises(TypeError, match="no knob 'reward_learning_rate'"):
        TrainConfig.of(reward_learning_rate=1.0)


def test_replace_leaves_the_original_alone():
    cfg = TrainConfig.of(segment_length=10)
    other = cfg.replace(segment_length=20, fit_epochs=3)
    assert (cfg.method.segment_length, cfg.reward_model.fit_epochs) == (10, 5)
    assert (other.method.segment_length, other.reward_model.fit_epochs) == (20, 3)


def test_config_json_is_flat_and_round_trips(tiny_config):
    cfg = tiny_config()
    data = json.loads(cfg.to_json())
    assert set(data) == set(KNOBS)
    assert data["teacher_beta"] is None  # inf is not JSON
    assert TrainConfig.from_json(cfg.to_json()) == cfg


def test_run_directories_written_before_the_tree_load_unchanged():
    saved = sorted((ROOT / "results" / "benchmark").glob("*/trials/*/config.json"))
    if not saved:
        pytest.skip("no committed benchmark trials to read")
    for path in saved[:4]:
        before = json.loads(path.read_text())
        after = json.loads(TrainConfig.load(path).to_json())
        assert {k: v for k, v in before.items() if k in KNOBS} == {k: after[k] for k in before if k in KNOBS}
