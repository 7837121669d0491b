"""What the paper found (REFERENCE.md's summary of Christiano et al. 2017, synthetic labels), set beside our verdict.

``paper_verdict`` gives the paper's word on a cell of ``pbrl bench report``, or None where REFERENCE.md says
nothing for it; no verdict is made up for budgets or games it does not cover.
"""

from __future__ import annotations

from pbrl.families import task_of

__all__ = ["PAPER_ATARI", "PAPER_ATARI_BUDGETS", "PAPER_MUJOCO", "PAPER_MUJOCO_TASKS", "PAPER_SOURCE",
           "paper_verdict"]

#: where the verdicts below come from, as report.json and report.md name it
PAPER_SOURCE = "REFERENCE.md (Christiano et al. 2017, synthetic labels)"
#: The 8 MuJoCo tasks of the paper, by base name (``Hopper`` for ``Hopper-v5``).
PAPER_MUJOCO_TASKS = frozenset({"Hopper", "Walker2d", "Swimmer", "HalfCheetah", "Ant", "Reacher", "InvertedPendulum",
                                "InvertedDoublePendulum"})
#: The paper's verdict on those tasks, by label budget. It also ran 350 labels; REFERENCE.md records no verdict
#: for that budget, so none is made up here.
PAPER_MUJOCO: dict[int, str] = {
    700: "paper: nearly matches true-reward RL (all 8 MuJoCo tasks)",
    1400: "paper: slightly better than true-reward RL",
}
#: Atari: the paper's budgets (3.3k / 5.5k / 10k) and its verdict per game over them.
PAPER_ATARI_BUDGETS = frozenset({3300, 5500, 10000})
PAPER_ATARI: dict[str, str] = {
    "BeamRider": "paper: matches or comes close to RL",
    "Pong": "paper: matches or comes close to RL",
    "Seaquest": "paper: near RL but learns slower",
    "Qbert": "paper: near RL but learns slower",
    "Breakout": "paper: does not match RL",
    "SpaceInvaders": "paper: does not match RL",
}  # Enduro: REFERENCE.md gives no verdict for synthetic labels


def paper_verdict(env_id: str, reward: str, budget: int | None) -> str | None:
    """What REFERENCE.md says the paper found for this cell, or None where it says nothing."""
    if reward != "learned" or budget is None:
        return None
    base = task_of(env_id).base  # "" for an env pbrl does not know (a user's own, even if named Hopper)
    if base in PAPER_MUJOCO_TASKS:
        return PAPER_MUJOCO.get(budget)
    if env_id.startswith("ALE/") and budget in PAPER_ATARI_BUDGETS:
        return PAPER_ATARI.get(base)
    return None
