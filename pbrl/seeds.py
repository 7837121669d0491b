"""Seed offsets: what each use of a run's seed adds to it, in one place.

Every source of randomness in a run is seeded from ``TrainConfig.seed`` (env copy ``i`` from ``seed + i``). The
evaluations play episodes of their own, from the run's seed plus an offset: a policy picked on one set of episodes
(the run's own evaluations) is reported on another (the final evaluation), and ``pbrl eval``, the demo's random
policy and ``pbrl video`` each replay theirs, which other tools can play again from these numbers.
"""

#: The synthetic oracle's generator (B-Pref teachers' random answers and mistakes).
ORACLE_SEED = 1
#: The final evaluation in ``metrics.json``, and the kept best policy's report there.
FINAL_EVAL_SEED = 10_000
#: ``pbrl eval``.
EVAL_COMMAND_SEED = 20_000
#: The run's own evaluations (``--eval-every``), which pick the best policy.
RUN_EVAL_SEED = 30_000
#: ``pbrl demo``'s uniformly random policy, the baseline both agents are compared with.
DEMO_RANDOM_POLICY_SEED = 30_000
#: ``pbrl video``'s episodes.
VIDEO_SEED = 40_000
