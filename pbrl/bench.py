"""``pbrl bench``: a grid of ordinary ``pbrl train`` runs, executed by Ray Tune, resumed by running it again.

A spec (a TOML file, or flags) names envs, rewards, label budgets, seeds and optional extra axes; each point of the
grid is a *trial*: an ordinary run directory ``DIR/trials/<name>`` trained by a ``pbrl train`` subprocess, so a
trial that crashes or is killed never takes the sweep down, and ``pbrl eval/status/video --run-dir`` work on it.

    DIR/bench.json          the resolved grid: every trial's name, run_dir, values and exact ``pbrl train`` args
    DIR/trials/<name>/      the trial's run directory;  DIR/trials/<name>.log: its stdout and stderr, appended
    DIR/ray/                Ray Tune's own records of each invocation (not needed to resume)

A trial whose run holds metrics.json is done and skipped; one with a checkpoint is resumed; the rest start fresh.
Ray Tune only schedules: it gives each trial's subprocess a CPU, here or on a cluster. ``pbrl bench report DIR``
(``pbrl.bench_report``) summarises the results. The grid (``expand``) and the trials' states (``trial_status``)
are plain functions of their inputs; Ray is imported only to run.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbrl.config import REWARDS, TrainConfig
from pbrl.errors import UserError
from pbrl.run_dir import RunDir, write_json_atomic


class SpecError(UserError):
    """A bench spec (file or flags) that does not describe a grid, with what to write instead."""


class BenchDirError(UserError):
    """A bench directory that cannot take this grid (its bench.json describes other trials)."""


class BenchError(UserError):
    """pbrl bench cannot run as asked (flags that do not fit together)."""


class RayMissing(BenchError):
    """Ray Tune is not installed; the message is the line that installs it."""


class TrialFailed(RuntimeError):
    """A trial's ``pbrl train`` ended without its metrics; raised in the Ray worker so Tune records an error."""


#: the ``pbrl`` command of the Python running the trial, so a venv works without being activated
PBRL = [sys.executable, "-m", "pbrl"]
RAY_MISSING = 'pbrl bench needs Ray Tune: pip install "pbrl[bench]"'

# -- the spec ------------------------------------------------------------------------------------------------

#: the keys of [bench]; the lists are the grid's axes
BENCH_KEYS = ("name", "envs", "rewards", "n_labels", "seeds", "total_timesteps", "train", "axes", "env")
#: TrainConfig fields the grid sets itself, and where in the spec they go instead
GRID_FIELDS = {"env_id": "envs", "env": "envs", "reward": "rewards", "n_labels": "n_labels", "seed": "seeds",
               "total_timesteps": "total_timesteps", "run_dir": "--dir"}
#: TrainConfig fields given as tables of KEY = VALUE (``--ppo KEY=VALUE``, ``--env-kwargs KEY=VALUE``)
TABLE_FIELDS = {"ppo": "--ppo", "env_kwargs": "--env-kwargs"}
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_TRAIN_FIELDS = {n: f for n, f in _FIELDS.items() if f.metadata.get("cli", True) and n not in GRID_FIELDS}
_KINDS = {"int": "a whole number", "float": "a number", "str": "text"}


@dataclass
class Trial:
    """One point of the grid: a ``pbrl train`` run in ``DIR/<run_dir>``."""

    name: str
    env_id: str
    reward: str
    n_labels: int | None  # None for a true-reward trial, which asks no labels
    seed: int
    total_timesteps: int
    axes: dict[str, Any]  # the extra axes' values, by key ("query_selection", "ppo.n_steps")
    train_args: list[str]  # the exact ``pbrl train`` flags, but --run-dir and --no-progress

    @property
    def run_dir(self) -> str:
        return f"trials/{self.name}"

    def record(self) -> dict[str, Any]:
        """The trial as bench.json holds it."""
        return {**dataclasses.asdict(self), "run_dir": self.run_dir}


def path_safe(text: str) -> str:
    return text.replace("/", "_").replace(":", "_")


def _kind(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def _unknown(where: str, key: str, known: Sequence[str]) -> SpecError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
    return SpecError(f"{where}: unknown key {key!r}{hint}")


def _train_key(where: str, key: str) -> str:
    """A train value's field name (flag names with - or _), or a SpecError saying where it goes instead."""
    name = key.replace("-", "_")
    if name in GRID_FIELDS:
        raise SpecError(f"{where}: {key} is set by the grid; give it as {GRID_FIELDS[name]} in [bench]"
                        + (" (or per env in [bench.env.\"ENV\"])" if name == "total_timesteps" else ""))
    if name not in _TRAIN_FIELDS and name not in TABLE_FIELDS:
        raise _unknown(where, key, [*sorted(_TRAIN_FIELDS), *TABLE_FIELDS])
    return name


def _check_value(where: str, name: str, value: Any) -> Any:
    """``value`` if it suits the TrainConfig field ``name`` (its type and choices), else a SpecError."""
    f = _TRAIN_FIELDS[name]
    kind = _kind(f)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, int | float) and not isinstance(value, bool),
          "str": isinstance(value, str)}[kind]
    if not ok:
        raise SpecError(f"{where}: {name} must be {_KINDS[kind]}, got {value!r}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise SpecError(f"{where}: {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _train_values(where: str, table: Any, allow: Sequence[str] = ()) -> dict[str, Any]:
    """A [bench.train] or [bench.env."ENV"] table as {field: value}; ppo and env_kwargs as {"ppo.KEY": value}."""
    if not isinstance(table, dict):
        raise SpecError(f"{where} must be a table of KEY = VALUE")
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_") if key.replace("-", "_") in allow else _train_key(where, key)
        if name in TABLE_FIELDS:
            if not isinstance(value, dict):
                raise SpecError(f"{where}: {key} must be a table, e.g. {key} = {{ KEY = VALUE }}")
            out.update({f"{name}.{k}": v for k, v in value.items()})
        elif name == "total_timesteps":
            out[name] = _positive_int(where, name, value)
        else:
            out[name] = _check_value(where, name, value)
    return out


def _positive_int(where: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SpecError(f"{where}: {key} must be a positive whole number, got {value!r}")
    return value


def _axis(where: str, key: str, values: Any) -> tuple[str, list[Any]]:
    if not isinstance(values, list):
        raise SpecError(f"{where}: {key} must be a list of values, e.g. {key} = [{values!r}]")
    if not values:
        raise SpecError(f"{where}: {key} is empty: the grid has no trials")
    if len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
        raise SpecError(f"{where}: {key} lists a value twice: {values!r}")
    return key, values


def _axes(where: str, table: Any) -> dict[str, list[Any]]:
    """[bench.axes] as {key: values}: a train field, or ``ppo.KEY`` / ``env_kwargs.KEY`` (quoted or as a table)."""
    if not isinstance(table, dict):
        raise SpecError(f"{where} must be a table of KEY = [VALUES]")
    out: dict[str, list[Any]] = {}
    for key, values in table.items():
        head, dot, sub = key.partition(".")
        name = _train_key(where, head)
        if dot and name not in TABLE_FIELDS:
            raise SpecError(f"{where}: {key!r}: only {' and '.join(TABLE_FIELDS)} take KEY.SUBKEY axes")
        if name in TABLE_FIELDS:
            subtable = {sub: values} if dot else values
            if not isinstance(subtable, dict):
                raise SpecError(f"{where}: {key} takes the axes of single {name} settings, e.g. "
                                f"\"{name}.KEY\" = [V1, V2]")
            out.update(_axis(where, f"{name}.{k}", v) for k, v in subtable.items())
        else:
            _, values = _axis(where, name, values)
            out[name] = [_check_value(where, name, v) for v in values]
    return out


def _grid_list(where: str, bench: dict[str, Any], key: str, default: list[Any],
               check: Callable[[Any], bool], what: str) -> list[Any]:
    if key not in bench and not default:
        raise SpecError(f"{where}: [bench] needs {key}, e.g. {key} = [\"Hopper-v5\"]")
    values = bench.get(key, default)
    if not isinstance(values, list):
        raise SpecError(f"{where}: {key} must be a list, e.g. {key} = [{values!r}]")
    if not values:
        raise SpecError(f"{where}: {key} is empty: the grid has no trials")
    for value in values:
        if not check(value):
            raise SpecError(f"{where}: {key} must list {what}, got {value!r}")
    if len(set(values)) < len(values):
        raise SpecError(f"{where}: {key} lists a value twice: {values!r}")
    return values


def _flag_value(value: Any) -> str:
    """A value as ``pbrl train`` reads it back: numbers in full, text as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)  # 1e-05, inf: what float() parses to the same number
    return str(value)


def _table_value(value: Any) -> str:
    """A ``--ppo``/``--env-kwargs`` value: JSON, or text where the text would not parse as JSON anyway."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _axis_value(value: Any) -> str:
    return _table_value(value) if isinstance(value, dict | list) else _flag_value(value)


def _train_args(values: dict[str, Any]) -> list[str]:
    """``pbrl train`` flags for {field or "ppo.KEY": value}, in the order given."""
    args: list[str] = []
    for key, value in values.items():
        name, dot, sub = key.partition(".")
        if dot:
            args += [TABLE_FIELDS[name], f"{sub}={_table_value(value)}"]
        else:
            args += [_FIELDS[name].metadata.get("flag", "--" + name.replace("_", "-")), _flag_value(value)]
    return args


@dataclass
class Grid:
    """A spec, checked: the grid's lists and the train values every trial, each env and each axis point adds."""

    name: str | None
    envs: list[str]
    rewards: list[str]
    budgets: list[int]
    seeds: list[int]
    total_timesteps: int
    train: dict[str, Any]  # {field or "ppo.KEY": value}, for every trial
    per_env: dict[str, dict[str, Any]]  # {env_id: {field or "ppo.KEY" or "total_timesteps": value}}
    axes: dict[str, list[Any]]  # {field or "ppo.KEY": values}


def parse_spec(spec: dict[str, Any], where: str) -> Grid:
    """A spec as read from TOML (``{"bench": {...}}``) checked into a Grid; ``where`` names it in error messages."""
    unknown = [k for k in spec if k != "bench"]
    if unknown or not isinstance(spec.get("bench"), dict):
        raise SpecError(f"{where}: a spec is one [bench] table" + (f"; unknown {unknown[0]!r}" if unknown else ""))
    bench = spec["bench"]
    for key in bench:
        if key not in BENCH_KEYS:
            raise _unknown(f"{where} [bench]", key, BENCH_KEYS)
    name = bench.get("name")
    if name is not None and (not isinstance(name, str) or not name or path_safe(name) != name):
        raise SpecError(f"{where}: name must be text without / or : (it names the directory), got {name!r}")
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    envs = _grid_list(where, bench, "envs", [], lambda v: isinstance(v, str) and v != "", "env ids")
    grid = Grid(
        name, envs,
        rewards=_grid_list(where, bench, "rewards", ["learned"], lambda v: v in REWARDS,
                           f"rewards from {', '.join(REWARDS)}"),
        budgets=_grid_list(where, bench, "n_labels", [TrainConfig.n_labels], lambda v: whole(v) and v > 0,
                           "positive whole numbers"),
        seeds=_grid_list(where, bench, "seeds", [0], lambda v: whole(v) and 0 <= v < 2**31,
                         f"whole numbers from 0 to {2**31 - 1}"),
        total_timesteps=_positive_int(f"{where} [bench]", "total_timesteps",
                                      bench.get("total_timesteps", TrainConfig.total_timesteps)),
        train=_train_values(f"{where} [bench.train]", bench.get("train", {})),
        per_env={}, axes=_axes(f"{where} [bench.axes]", bench.get("axes", {})))
    per_env = bench.get("env", {})
    if not isinstance(per_env, dict):
        raise SpecError(f"{where}: env must be tables of per-env values, e.g. [bench.env.\"{envs[0]}\"]")
    for env_id, table in per_env.items():
        if env_id not in envs:
            raise SpecError(f"{where}: [bench.env.\"{env_id}\"] names an env that is not in envs ({', '.join(envs)})")
        grid.per_env[env_id] = _train_values(f"{where} [bench.env.\"{env_id}\"]", table, allow=("total_timesteps",))
    sources = {"[bench.train]": grid.train, **{f"[bench.env.\"{e}\"]": v for e, v in grid.per_env.items()}}
    for key in grid.axes:
        for source, values in sources.items():
            if key in values:
                raise SpecError(f"{where}: {key} is both an axis and set in {source}; keep one")
    return grid


def expand(spec: dict[str, Any], where: str) -> tuple[str | None, list[Trial]]:
    """The spec's name and its trials, in the order they run: seed by seed, so a sweep stopped half way holds
    whole seeds of the grid. A true-reward trial asks no labels: one per env, seed and extra-axes point."""
    grid = parse_spec(spec, where)
    trials: list[Trial] = []
    for seed, env_id, reward in itertools.product(grid.seeds, grid.envs, grid.rewards):
        for n_labels in grid.budgets if reward == "learned" else [None]:
            for point in itertools.product(*grid.axes.values()):
                at = dict(zip(grid.axes, point, strict=True))
                values = {**grid.train, **grid.per_env.get(env_id, {}), **at}
                steps = values.pop("total_timesteps", grid.total_timesteps)
                owned = {"env_id": env_id, "reward": reward, **({"n_labels": n_labels} if n_labels else {}),
                         "seed": seed, "total_timesteps": steps}
                name = "__".join([path_safe(env_id), reward, *([f"n{n_labels}"] if n_labels else []), f"s{seed}",
                                  *(f"{k}={path_safe(_axis_value(v))}" for k, v in at.items())])
                trials.append(Trial(name, env_id, reward, n_labels, seed, steps, at, _train_args({**owned, **values})))
    twice = sorted(name for name, n in Counter(t.name for t in trials).items() if n > 1)
    if twice:
        raise SpecError(f"{where}: two trials would share the name {twice[0]} (env ids or values that differ only "
                        "in / or :); rename one")
    return grid.name, trials


def read_spec(path: Path) -> dict[str, Any]:
    """The TOML spec file at ``path``, or one SpecError line."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SpecError("reading a spec file on Python 3.10 needs tomli: pip install tomli") from None
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"no spec file {path}; see benchmarks/*.toml for examples") from None
    except OSError as exc:
        raise SpecError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML ({exc})") from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_value(flag: str, item: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise SpecError(f"{flag} takes KEY=VALUE, got {item!r}")
    return key, raw


def _flag_train_value(flag: str, key: str, raw: str) -> Any:
    """A ``--train``/``--axis`` value as its field's type, so --train pretrain_epochs=5 gives 5, not "5"."""
    name = key.replace("-", "_")
    f = _TRAIN_FIELDS.get(name)
    if f is None or name in TABLE_FIELDS:
        return _parse_value(raw)
    try:
        return {"int": int, "float": float, "str": str}[_kind(f)](raw)
    except ValueError:
        raise SpecError(f"{flag} {key}: {name} must be {_KINDS[_kind(f)]}, got {raw!r}") from None


def spec_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The grid of ``--env/--reward/--n-labels/--seeds/--total-timesteps/--train/--ppo/--axis`` as a spec."""
    bench: dict[str, Any] = {"envs": args.envs}
    for key in ("rewards", "n_labels", "seeds", "total_timesteps"):
        if getattr(args, key) is not None:
            bench[key] = getattr(args, key)
    train: dict[str, Any] = {}
    for item in args.train:
        key, raw = _key_value("--train", item)
        train[key] = _flag_train_value("--train", key, raw)
    ppo = dict(_key_value("--ppo", item) for item in args.ppo)
    if ppo:
        train["ppo"] = {k: _parse_value(v) for k, v in ppo.items()}
    axes: dict[str, Any] = {}
    for item in args.axis:
        key, raw = _key_value("--axis", item)
        axes[key] = [_flag_train_value("--axis", key.partition(".")[0], v) if "." not in key else _parse_value(v)
                     for v in raw.split(",")]
    bench.update({"train": train} if train else {}, **({"axes": axes} if axes else {}))
    return {"bench": bench}


# -- the bench directory ---------------------------------------------------------------------------------------


def trial_status(run_dir: Path) -> str:
    """'done' (metrics.json written), 'resume' (a run stopped, perhaps before its first checkpoint) or 'new'."""
    if (run_dir / "metrics.json").exists():
        return "done"
    run = RunDir(run_dir)
    return "resume" if run.holds_checkpoint() or run.never_checkpointed() else "new"


def trial_command(run_dir: Path, train_args: Sequence[str]) -> list[str]:
    """What to run for ``run_dir`` now: nothing (done), a resume (its saved config decides), or a fresh start."""
    status = trial_status(run_dir)
    if status == "done":
        return []
    if status == "resume":
        return [*PBRL, "train", "--resume", "--run-dir", str(run_dir), "--no-progress"]
    return [*PBRL, "train", *train_args, "--run-dir", str(run_dir), "--no-progress"]


def merge_bench_json(path: Path, trials: list[Trial], command: list[str]) -> dict[str, Any]:
    """bench.json's content for ``trials``: the trials it already holds, then the new ones. A trial it holds under
    the same name but with other values is refused: its run directory was made by the old spec."""
    records = [t.record() for t in trials]
    old: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text())["trials"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchDirError(f"{path} cannot be read ({exc}); restore it or use a new --dir") from None
    held = {t["name"]: t for t in old}
    for rec in records:
        before = held.get(rec["name"])
        if before is not None and before != rec:
            key = next(k for k in rec if before.get(k) != rec[k])
            raise BenchDirError(
                f"{path.parent} holds trial {rec['name']} with {key} {_shown(before.get(key))}; the spec now gives "
                f"{_shown(rec[key])}. A changed spec needs a new --dir (adding trials to a spec is fine)")
    return {"command": command, "trials": old + [r for r in records if r["name"] not in held]}


def _shown(value: Any) -> str:
    return shlex.join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else repr(value)


def _last_line(log: Path) -> str:
    """The last line a trial's ``pbrl train`` wrote (its error, where it failed), with the exit code bench noted."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "no log"
    ours = [line for line in lines if line.startswith("[bench ")]
    theirs = [line for line in lines if not line.startswith("[bench ")]
    code = ours[-1].partition("] ")[2] if ours and "exit" in ours[-1] else ""
    return "; ".join(x for x in (theirs[-1] if theirs else "", code) if x) or "the log is empty"


# -- one trial, in a Ray worker ------------------------------------------------------------------------------------

#: Runs the command with PR_SET_PDEATHSIG, so the kernel kills ``pbrl train`` when the thread of the Ray worker that
#: started it dies, however it dies (a SIGKILL leaves no ``finally`` to run). The run dir is crash-safe: it resumes.
_DIE_WITH_PARENT = ("import ctypes, os, signal, sys\n"
                    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
                    "if os.getppid() != int(sys.argv[1]):\n"
                    "    os._exit(137)\n"
                    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")


def _launch(cmd: list[str], log, cwd: str) -> subprocess.Popen:
    """Start ``cmd`` in a process group of its own (a Ctrl-C at the terminal reaches the sweep, which stops it)."""
    if sys.platform.startswith("linux") and cmd[0] == sys.executable:
        cmd = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd[1:]]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """End ``proc``'s group: SIGINT first (``pbrl train`` stops at once, saying how to resume), then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue


def _timesteps(run_dir: Path) -> int | None:
    try:
        return int(json.loads(RunDir(run_dir).state.read_text())["num_timesteps"])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None


def run_trial(config: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> None:
    """Ray Tune's trainable: run trial ``config["trial"]`` as a ``pbrl train`` subprocess, report its timesteps
    while it runs and its metrics.json at the end, or raise ``TrialFailed`` so Tune records the trial as errored."""
    from ray import tune

    job = jobs[config["trial"]]
    run_dir, log_path = Path(job["run_dir"]), Path(job["log"])
    cmd = trial_command(run_dir, job["train_args"])
    if cmd:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd = job["cwd"] if os.path.isdir(job["cwd"]) else str(log_path.parent)
        with open(log_path, "a") as log:
            log.write(f"[bench {time.strftime('%Y-%m-%d %H:%M:%S')}] {shlex.join(cmd)}\n")
            log.flush()
            proc = _launch(cmd, log, cwd)
            try:
                seen = None
                while proc.poll() is None:
                    try:
                        proc.wait(timeout=job["poll_s"])
                    except subprocess.TimeoutExpired:
                        steps = _timesteps(run_dir)
                        if steps is not None and steps != seen:
                            tune.report({"timesteps": steps, "finished": False})
                            seen = steps
            finally:
                _stop(proc)
            log.write(f"[bench {time.strftime('%Y-%m-%d %H:%M:%S')}] exit code {proc.returncode}\n")
        if proc.returncode != 0:
            raise TrialFailed(f"{config['trial']}: {_last_line(log_path)}")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        raise TrialFailed(f"{config['trial']}: pbrl train ended without a readable metrics.json") from None
    tune.report({**metrics, "timesteps": metrics.get("total_timesteps"), "finished": True})


# -- the sweep ------------------------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """1h20m, 12m05s, 45s."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass
class Progress:
    """What the user reads while the grid runs: each trial's start and end, and every ``every_s`` a count with an
    ETA (the mean wall time of the trials finished in this invocation, times those left, over the concurrency)."""

    n_total: int  # trials selected, done ones included
    n_done: int  # done before this invocation
    concurrency: int
    logs: dict[str, Path]
    statuses: dict[str, str]
    every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.started_at: dict[str, float] = {}
        self.walls: list[float] = []
        self.failed: dict[str, str] = {}
        self.last_line_at = self.clock()

    def _say(self, text: str) -> None:
        print(f"bench: {text}", flush=True)

    def start(self, name: str) -> None:
        self.started_at[name] = self.clock()
        self._say(f"start {name} ({self.statuses.get(name, 'new')})")

    def finish(self, name: str, metrics: dict[str, Any]) -> None:
        wall = self.clock() - self.started_at.pop(name, self.clock())
        self.walls.append(wall)
        self.n_done += 1
        ret = metrics.get("eval_true_return_mean")
        shown = f", eval_true_return_mean {ret:.1f}" if isinstance(ret, int | float) else ""
        self._say(f"done {name} in {duration(wall)}{shown}")

    def fail(self, name: str) -> None:
        wall = self.clock() - self.started_at.pop(name, self.clock())
        self.failed[name] = _last_line(self.logs[name])
        self._say(f"FAILED {name} after {duration(wall)}: {self.failed[name]}")

    def line(self) -> str:
        left = self.n_total - self.n_done - len(self.failed)
        eta = "?" if not self.walls else duration(sum(self.walls) / len(self.walls) * left / self.concurrency)
        return (f"{self.n_done}/{self.n_total} done, {len(self.started_at)} running, {len(self.failed)} failed, "
                f"ETA {eta}")

    def tick(self) -> None:
        if self.clock() - self.last_line_at >= self.every_s:
            self.last_line_at = self.clock()
            self._say(self.line())


def _tune_callback(tune, progress: Progress):
    """A Tune callback that tells ``progress`` what happens to the trials."""

    class ProgressLines(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.start(trial.config["trial"])

        def on_trial_complete(self, iteration, trials, trial, **info):
            progress.finish(trial.config["trial"], trial.last_result or {})

        def on_trial_error(self, iteration, trials, trial, **info):
            progress.fail(trial.config["trial"])

        def on_step_end(self, iteration, trials, **info):
            progress.tick()

    return ProgressLines()


def _trial_name(trial) -> str:
    return trial.config["trial"]


def run_with_ray(root: Path, names: list[str], jobs: dict[str, dict[str, Any]], progress: Progress,
                 max_concurrent: int | None, address: str | None, gpus_per_trial: float) -> None:
    """Run the trials ``names`` by Ray Tune, locally (``max_concurrent`` CPUs) or on the cluster at ``address``."""
    import logging

    # before Ray reads them: the old quiet console (verbose=0 prints nothing), and Ctrl-C raised at once (the
    # trials' run dirs resume; Tune's own handler would first save an experiment state we do not use)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    try:
        import ray
        from ray import tune
    except ImportError:
        raise RayMissing(RAY_MISSING) from None
    started = not ray.is_initialized()
    if started and address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    elif started:
        ray.init(num_cpus=max_concurrent, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    tune_logger.setLevel(logging.CRITICAL)  # a failed trial is our one line, not Tune's traceback
    try:
        if max_concurrent is None:  # on a cluster: as many at a time as it has CPUs for
            progress.concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)))
        resources = {"cpu": 1, **({"gpu": gpus_per_trial} if gpus_per_trial else {})}
        trainable = tune.with_resources(tune.with_parameters(run_trial, jobs=jobs), resources)
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(names)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, trial_name_creator=_trial_name,
                                        trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(storage_path=str((root / "ray").resolve()),
                                      name=time.strftime("%Y%m%d-%H%M%S"),
                                      failure_config=tune.FailureConfig(max_failures=0), verbose=0,
                                      callbacks=[_tune_callback(tune, progress)]))
        tuner.fit()
    finally:
        tune_logger.setLevel(level)
        if started:
            ray.shutdown()  # ends the workers; each trial's pbrl train dies with its worker (_DIE_WITH_PARENT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbrl bench",
        description="Run a grid of pbrl train runs (a TOML spec, or --env/--reward/--n-labels/--seeds flags) by "
                    "Ray Tune, each in DIR/trials/NAME. Run the same command again to resume: finished trials are "
                    "skipped, stopped ones resumed. Summarise with: pbrl bench report DIR",
        epilog="See docs/bench.md and benchmarks/*.toml.")
    parser.add_argument("spec", nargs="?", help="the grid as a TOML file (benchmarks/mujoco8.toml)")
    parser.add_argument("--dir", help="where the trials live (default: runs/bench/NAME, NAME from the spec)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="trials at a time, one CPU each (default: this machine's CPUs; on a cluster: as many "
                             "as it has CPUs for)")
    parser.add_argument("--address", help="run on the Ray cluster at this address ('auto' or HOST:PORT); DIR must "
                                          "be on storage every node shares, at the same path")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0,
                        help="GPUs Ray reserves for each trial, e.g. 0.5 for Atari runs on --device cuda (default: 0)")
    parser.add_argument("--dry-run", action="store_true", help="print the trials (done/resume/new) and the command "
                                                               "each would run; run nothing")
    parser.add_argument("--only", metavar="SUBSTR", action="append",
                        help="only the trials whose name contains SUBSTR (repeatable: any of them), e.g. "
                             "--only __true__ --only __n700__ to run the baselines and one budget first")
    parser.add_argument("--poll-s", type=float, default=10.0, help=argparse.SUPPRESS)
    grid = parser.add_argument_group("a grid from flags, instead of a spec (needs --dir)")
    grid.add_argument("--env", dest="envs", action="append", metavar="ENV_ID", help="an env (repeatable)")
    grid.add_argument("--reward", dest="rewards", action="append", metavar="REWARD",
                      help="learned or true (repeatable; default: learned)")
    grid.add_argument("--n-labels", dest="n_labels", action="append", type=int, metavar="N",
                      help="a label budget (repeatable)")
    grid.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds (default: 0)")
    grid.add_argument("--total-timesteps", type=int, metavar="N", help="PPO agent steps of every trial")
    grid.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                      help="a pbrl train value for every trial, e.g. --train eval_every=100000 (repeatable)")
    grid.add_argument("--ppo", action="append", default=[], metavar="KEY=VALUE",
                      help="a PPO setting for every trial, as pbrl train --ppo (repeatable)")
    grid.add_argument("--axis", action="append", default=[], metavar="KEY=V1,V2",
                      help="an extra axis, e.g. --axis query_selection=disagreement,random (repeatable)")
    return parser


def _grid(args: argparse.Namespace) -> tuple[Path, list[Trial]]:
    """The bench directory and the trials of the spec file or the flags."""
    flags = args.envs or args.rewards or args.n_labels or args.seeds or args.total_timesteps or args.train \
        or args.ppo or args.axis
    if args.spec and flags:
        raise BenchError("give a spec file or a grid by flags (--env ...), not both")
    if args.spec:
        name, trials = expand(read_spec(Path(args.spec)), args.spec)
        name = name or Path(args.spec).stem
        return Path(args.dir or f"runs/bench/{name}"), trials
    if not flags:
        raise BenchError("give a spec file (pbrl bench benchmarks/tiny.toml) or a grid by flags (--env ENV --seeds "
                         "0 1 --dir DIR)")
    if not args.envs:
        raise BenchError("a grid by flags needs at least one --env")
    if not args.dir:
        raise BenchError("a grid by flags needs --dir DIR (where its trials live)")
    return Path(args.dir), expand(spec_from_flags(args), "flags")[1]


def _print_table(root: Path, trials: list[Trial], statuses: dict[str, str]) -> None:
    width = max(len(t.name) for t in trials)
    print(f"{'trial':<{width}}  status  command")
    for t in trials:
        cmd = trial_command(root / t.run_dir, t.train_args)
        shown = "(skipped)" if not cmd else shlex.join(["pbrl", *cmd[len(PBRL):]])
        print(f"{t.name:<{width}}  {statuses[t.name]:<6}  {shown}")


def run_bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    root, trials = _grid(args)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise BenchError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if args.gpus_per_trial < 0:
        raise BenchError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial}")
    record = merge_bench_json(root / "bench.json", trials, ["pbrl", "bench", *argv])  # refuses a changed spec
    chosen = [t for t in trials if args.only is None or any(o in t.name for o in args.only)]
    if not chosen:
        raise BenchError(f"--only {' '.join(args.only)!r} matches none of the {len(trials)} trials "
                         f"(e.g. {trials[0].name})")
    statuses = {t.name: trial_status(root / t.run_dir) for t in chosen}
    counts = {s: sum(v == s for v in statuses.values()) for s in ("done", "resume", "new")}
    summary = (f"{len(chosen)} trials ({counts['done']} done, {counts['resume']} to resume, {counts['new']} new) "
               f"in {root}")
    if args.dry_run:
        _print_table(root, chosen, statuses)
        print(f"bench: {summary}")
        return 0
    (root / "trials").mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "bench.json", record)
    print(f"bench: {summary}", flush=True)
    to_run = [t.name for t in chosen if statuses[t.name] != "done"]
    local = args.address is None
    concurrency = (args.max_concurrent or os.cpu_count() or 1) if local else (args.max_concurrent or 1)
    logs = {t.name: (root / "trials" / f"{t.name}.log").resolve() for t in chosen}
    progress = Progress(len(chosen), counts["done"], concurrency, logs, statuses)
    if to_run:
        cwd = os.getcwd()
        jobs = {t.name: {"run_dir": str((root / t.run_dir).resolve()), "log": str(logs[t.name]), "cwd": cwd,
                         "train_args": t.train_args, "poll_s": args.poll_s} for t in chosen if t.name in to_run}
        run_with_ray(root, to_run, jobs, progress, concurrency if local else args.max_concurrent, args.address,
                     args.gpus_per_trial)
    # -- what the run dirs hold now ------------------------------------------------------------------------------
    done_now = [n for n in to_run if trial_status(root / "trials" / n) == "done"]
    failed = {n: progress.failed[n] for n in to_run if n not in done_now and n in progress.failed}
    not_run = [n for n in to_run if n not in done_now and n not in failed]
    print(f"bench: {len(done_now)} done, {len(failed)} failed, {counts['done']} skipped (done before)"
          + (f", {len(not_run)} not finished" if not_run else ""), flush=True)
    for name, why in failed.items():
        print(f"  failed {name}: {why}  (log: {logs[name]})")
    print(f"bench: results in {root}; summarise them with  pbrl bench report {root}", flush=True)
    return 1 if failed or not_run else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        try:
            from pbrl.bench_report import main as report_main
        except ModuleNotFoundError as exc:
            if exc.name != "pbrl.bench_report":
                raise
            print("pbrl bench: error: this pbrl has no pbrl bench report (pbrl/bench_report.py)", file=sys.stderr)
            return 2
        return report_main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    # Ctrl-C raises KeyboardInterrupt here, whatever the caller set (``pbrl``'s handler exits at once, a background
    # job starts with SIGINT ignored): the sweep ends Ray, and with it every trial, before it exits
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_bench(args, argv)
    except KeyboardInterrupt:
        print("\npbrl bench: stopped; every trial's run dir is kept: run the same command again to resume",
              file=sys.stderr)
        return 130
    except UserError as exc:
        if isinstance(exc, RayMissing):
            print(exc, file=sys.stderr)
        else:
            print(f"pbrl bench: error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
