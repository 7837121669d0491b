"""Where a knob's value comes from when the user gives no flag: the env family's or the task's value
(``pbrl.families``) over the knob's own default; and the words ``--help`` and ``config.json`` use to say so."""

from __future__ import annotations

from typing import Any

from pbrl.config.tree import RunSettings

#: What the Atari family does to ``initial_label_fraction`` (500 of the budget before RL, where it allows).
_ATARI_INITIAL = "initial_label_fraction"


def family_defaults(env_id: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` knob values (by flat name), completed with the settings of the env's family and task where not
    given (``pbrl.families``)."""
    from pbrl.families import ATARI_INITIAL_LABELS, family_of, method_defaults

    out = {**method_defaults(env_id), **given}
    if family_of(env_id).name == "atari" and _ATARI_INITIAL not in given:
        n_labels = int(given.get("n_labels", RunSettings.n_labels))
        out[_ATARI_INITIAL] = min(1.0, ATARI_INITIAL_LABELS / max(n_labels, 1))
    return out


def value_sources(env_id: str, given: dict[str, Any], ppo_flags: dict[str, Any], preset_source: str) -> dict[str, str]:
    """Where the values of a new run come from, for ``config.json``: a flag, the env's family or task
    (``pbrl.families``), or the PPO preset; a value not named is the global default."""
    from pbrl.families import family_of, method_defaults, task_of

    task = task_of(env_id)
    out = {k: f"{'task ' + task.base if k in task.method else 'family ' + family_of(env_id).name}"
           for k in method_defaults(env_id)}
    if family_of(env_id).name == "atari":
        out[_ATARI_INITIAL] = "family atari (500 initial labels)"
    out.update({k: "flag" for k in given})
    out["ppo"] = f"preset {preset_source}"
    out.update({f"ppo.{k}": "flag --ppo" for k in ppo_flags})
    return out


def registry_values(name: str) -> list[tuple[str, Any]]:
    """Each family and task of ``pbrl.families`` that gives the knob ``name`` a value of its own, with the value:
    what ``--help`` lists after the knob's default."""
    from pbrl.families import ATARI_INITIAL_LABELS, FAMILIES, TASKS

    if name == "ppo_preset":
        return ([(f"family {fam.name}", fam.ppo_preset) for fam in FAMILIES.values()]
                + [(f"task {task.base}", task.default_preset) for task in TASKS.values() if task.default_preset])
    out = [(f"family {fam.name}", fam.method[name]) for fam in FAMILIES.values() if name in fam.method]
    out += [(f"task {task.base}", task.method[name]) for task in TASKS.values() if name in task.method]
    if name == _ATARI_INITIAL:
        out.append(("family atari", f"{ATARI_INITIAL_LABELS} labels' worth"))
    return out
