"""The ``pbrl`` command (``python -m pbrl`` where the venv's bin folder is not on PATH).

Its first line makes a Ctrl-C that comes while Python is still loading pbrl and its libraries (torch takes a second
or two) end the command with one line instead of an import traceback: nothing has been written at that point.
``pbrl.cli.main`` puts Python's own Ctrl-C handling back once it is inside its error handling.
"""

import os
import signal
import sys


def _stopped_while_loading(signum, frame) -> None:
    os.write(2, b"\npbrl: stopped before anything was written\n")
    os._exit(130)


def run() -> None:
    signal.signal(signal.SIGINT, _stopped_while_loading)
    from pbrl.cli import main

    try:
        code = main()
    except BrokenPipeError:  # `pbrl presets ENV | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        code = 0
    if sys.argv[1:2] == ["label"]:
        # The window is closed, its answers and log written: skip tearing down torch, MuJoCo and GL at exit (0.8 s
        # measured under X), so that q quits at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
