"""The labelling window under a real X server, with real key presses (Xvfb and xdotool; skipped without them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "ui" / "person_under_x.py"
MISSING = [t for t in ("Xvfb", "xdotool", "import") if shutil.which(t) is None]


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (apt-get install xvfb xdotool imagemagick)")
def test_a_person_under_x_labels_a_live_run_and_nothing_is_lost(tmp_path):
    """A short version of scripts/ui/person_under_x.py: 12 answers at a quick pace, q to quit, then q in a --ui window
    before the initial labels."""
    out = tmp_path / "person"
    done = subprocess.run([sys.executable, str(SCRIPT), "--answers", "12", "--min-s", "0.3", "--max-s", "0.6",
                           "--keep", str(tmp_path / "runs"), "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["answers_sent"] == figures["answers_stored"] == 12
    assert figures["lost"] == figures["duplicated"] == figures["wrong_label"] == figures["refused_keys"] == 0
    assert figures["quit_process_gone_s"] < 5  # the figure itself is measured by the script, not asserted here
    ui = figures["ui_quit_before_initial_labels"]
    assert ui["one_line"] and not ui["zombies"] and "pbrl label --run-dir" in ui["trainer_said"][0]
