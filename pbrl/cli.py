"""The ``pbrl`` command line: one parser for every subcommand (``pbrl.commands`` does the work), Ctrl-C and errors.

Every knob of the config tree (``pbrl.config``) is a ``pbrl train`` flag, with its field doc as the help and the
default each env family gives it. Errors a user can make (unknown env, bad numbers, a run dir in the wrong state)
end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pbrl.commands.demo import DEMO, cmd_demo
from pbrl.commands.runs import cmd_eval, cmd_label, cmd_presets, cmd_status, cmd_video, run_status
from pbrl.commands.train import cmd_train, ppo_overrides
from pbrl.config import KNOBS, default_of, family_defaults, flag_of, registry_values
from pbrl.errors import UsageError, UserError
from pbrl.extras import MissingExtra
from pbrl.ppo_defaults import PPO_KEYS
from pbrl.run_dir import RunDir
from pbrl.web.cli import add_parser as add_serve_parser
from pbrl.web.cli import cmd_serve

__all__ = ["UsageError", "build_parser", "main", "ppo_overrides", "run_status"]


def _shown(value: Any) -> str:
    return "inf" if isinstance(value, float) and math.isinf(value) else json.dumps(value) if value == "" else str(value)


def _env_values(env_id: str) -> dict[str, Any]:
    """The knob values ``env_id`` gets where no flag is given and they differ from the knobs' own defaults: its
    family's and task's, and the PPO preset it takes with that preset's number of env copies."""
    from pbrl.families import default_preset, ppo_preset

    return {**family_defaults(env_id, {}), "ppo_preset": default_preset(env_id),
            "n_envs": ppo_preset(env_id)[0]["n_envs"]}


def _default_text(name: str, default: Any, env_values: dict[str, Any] | None, env_id: str | None) -> str:
    """The help's "(default: ...)": the knob's own default and each family's or task's value where it differs, or,
    with ``--env ENV --help``, the value that env gets."""
    if env_values is not None:
        return f"(default for {env_id}: {_shown(env_values.get(name, default))})"
    others = "; ".join(f"{where}: {_shown(value)}" for where, value in registry_values(name))
    return f"(default: {_shown(default)}{'; ' + others if others else ''})"


def _add_config_flags(parser: argparse.ArgumentParser, env_id: str | None = None) -> None:
    env_values = _env_values(env_id) if env_id is not None else None
    for name, (_, f) in KNOBS.items():
        if not f.metadata["cli"]:
            continue
        kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
        parser.add_argument(flag_of(f), dest=name, type=kind, default=argparse.SUPPRESS, metavar=name.upper(),
                            choices=f.metadata["choices"],
                            help=f"{f.metadata['help']} {_default_text(name, default_of(f), env_values, env_id)}")


def build_parser(env_id: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; ``env_id`` makes ``pbrl train --help`` show that env's defaults."""
    parser = argparse.ArgumentParser(
        prog="pbrl", description="Preference-based RL (Christiano et al. 2017): teach an agent by comparing clips.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", help="train an agent from preferences (or on the true reward)",
        description="Train PPO on a reward learned from comparisons, or on the true reward. Each flag's help "
                    "gives its default and the env families and tasks that change it (pbrl.families); "
                    "`pbrl train --env ENV --help` gives the values ENV gets. config.json in the run directory "
                    "records every value used and where it came from.")
    train.add_argument("--run-dir", required=True, help="directory of the run (created; must be new unless --resume)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")
    train.add_argument("--ui", action="store_true",
                       help="with --labeler human: also open the labelling window (pbrl label) for this run")
    train.add_argument("--video", action="store_true",
                       help="at the end, write a video of the trained policy to RUN_DIR/policy.mp4 (needs the "
                            "video extra)")
    train.add_argument("--ppo", action="append", default=[], metavar="KEY=VALUE",
                       help="override one setting of the env's PPO preset, e.g. --ppo n_steps=1024 "
                            "--ppo learning_rate=1e-4 (repeatable; keys: " + ", ".join(PPO_KEYS) + ")")
    train.add_argument("--env-kwargs", action="append", default=[], metavar="KEY=VALUE", dest="env_kwargs_items",
                       help="a keyword argument for the env's constructor, e.g. --env-kwargs target=2.0; values "
                            "are read as JSON where they parse, else as text (repeatable)")
    _add_config_flags(train, env_id)

    ev = sub.add_parser("eval", help="true return of a run's saved policy",
                        description="Evaluate the saved policy of a run on the env's true reward.")
    ev.add_argument("--run-dir", required=True, help="directory of the run")
    ev.add_argument("--episodes", type=int, default=10, help="episodes to evaluate (default: 10)")
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")

    demo = sub.add_parser(
        "demo", help="a short synthetic-oracle run compared with true-reward PPO and random actions",
        description="Train PPO from synthetic preferences and PPO on the true reward side by side (two processes), "
                    "then print both agents' true returns next to a random policy's.")
    demo.add_argument("--run-dir", default=None, help="parent directory of the two runs (default: runs/demo-TIME)")
    demo.add_argument("--env", dest="env_id", default=DEMO["env_id"], help=f"env id (default: {DEMO['env_id']})")
    demo.add_argument("--total-timesteps", type=int, default=DEMO["total_timesteps"],
                      help=f"PPO steps per agent (default: {DEMO['total_timesteps']})")
    demo.add_argument("--n-labels", type=int, default=DEMO["n_labels"],
                      help=f"synthetic labels for the learned-reward agent (default: {DEMO['n_labels']})")
    demo.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    demo.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes per policy (default: 10)")

    lab = sub.add_parser(
        "label", help="open the clip-comparison window and answer a run's queries",
        description="Show pairs of clips from a run trained with --labeler human and store which one is better. "
                    "Start it before, during or after training; several windows (people) can share one run.")
    lab.add_argument("--run-dir", required=True, help="directory of the run (waits for it if training has not "
                                                      "started yet)")
    lab.add_argument("--name", default=None, help="your name, stored with every answer (default: your user name)")
    lab.add_argument("--instructions", default=None,
                     help="the task in words, shown at the top (default: the run's --instructions)")
    lab.add_argument("--size", type=int, default=None,
                     help="clip height in pixels, 32 up to what fits the screen (default: the window takes about "
                          "two thirds of the screen's width; it can be resized)")
    lab.add_argument("--lease-s", type=float, default=120.0,
                     help="seconds without input after which this window gives its pairs back (default: 120)")

    vid = sub.add_parser("video", help="write a video of a run's saved policy",
                         description="Play the run's deterministic policy and write what it does as MP4 or GIF.")
    vid.add_argument("--run-dir", required=True, help="directory of the run")
    vid.add_argument("--episodes", type=int, default=1, help="episodes to record (default: 1)")
    vid.add_argument("--out", default=None, help="output file, .mp4 or .gif (default: RUN_DIR/policy.mp4)")
    vid.add_argument("--size", type=int, default=256, help="frame size in pixels (default: 256)")
    vid.add_argument("--max-steps", type=int, default=None, help="record at most this many steps per episode")

    st = sub.add_parser("status", help="one JSON object describing a run",
                        description="Print timesteps, labels, pending queries, reward-model accuracy, the training "
                                    "episodes' true return, the latest and best evaluations and the time left as "
                                    "JSON.")
    st.add_argument("--run-dir", required=True, help="directory of the run")

    pr = sub.add_parser("presets", help="the settings an env gets where no flag is given",
                        description="Print the env's family and task, the method settings they change, and its PPO "
                                    "presets (the default one first) with where each comes from.")
    pr.add_argument("env", metavar="ENV", help="env id, e.g. Hopper-v5 or ALE/Pong-v5")

    sub.add_parser("bench", help="run a grid of training runs on Ray Tune, resumable; `pbrl bench report DIR`",
                   description="pbrl bench SPEC.toml [--dir DIR] [--max-concurrent N] [--address auto|HOST:PORT]; "
                               "pbrl bench report DIR. See `pbrl bench --help` and docs/bench.md.",
                   add_help=False)
    add_serve_parser(sub)
    return parser


def _stopped(args: argparse.Namespace) -> str:
    """What a Ctrl-C leaves behind, in one line."""
    if args.command != "train":
        return "pbrl: stopped"
    run = RunDir(args.run_dir)
    if run.holds_run():
        return f"pbrl: stopped; continue from the last checkpoint with: pbrl train --resume --run-dir {run.path}"
    if run.never_checkpointed():
        return f"pbrl: stopped before the first checkpoint; start it afresh: pbrl train --resume --run-dir {run.path}"
    return "pbrl: stopped before the run was written"


def _exit_on_ctrl_c(args: argparse.Namespace):
    """A SIGINT handler that ends the command at once with one line. A run is written so that a kill at any instant
    leaves it resumable, so there is nothing to clean up; a KeyboardInterrupt instead could land where Python only
    prints it and goes on (an import's cleanup callback), or print a traceback from the middle of an import."""

    def handler(signum, frame) -> None:
        os.write(2, f"\n{_stopped(args)}\n".encode())
        os._exit(130)

    return handler


def _env_asked_about(argv: list[str]) -> str | None:
    """The ``--env`` of ``pbrl train --env ENV --help``, whose defaults the help then shows."""
    if argv[:1] != ["train"] or not {"-h", "--help"} & set(argv):
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env")
    return pre.parse_known_args(argv[1:])[0].env


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "status": cmd_status, "presets": cmd_presets, "demo": cmd_demo,
            "label": cmd_label, "video": cmd_video, "serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own parser (a spec file or flags, and `bench report`)
        from pbrl.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser(_env_asked_about(argv)).parse_args(argv)
    # the window, the web server and the demo keep Python's KeyboardInterrupt: the window and the server give their
    # pairs back on the way out
    keep = ("label", "serve", "demo")
    on_ctrl_c = signal.default_int_handler if args.command in keep else _exit_on_ctrl_c(args)
    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\n{_stopped(args)}", file=sys.stderr)
        return 130
    except (UserError, MissingExtra) as exc:  # config, run dir, store, env, usage: one line each
        print(f"pbrl: error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
