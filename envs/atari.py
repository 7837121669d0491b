"""The paper's seven Atari games with its preprocessing, the score blacked out, and no episode-end signal.

``make_atari(game)`` builds, in this order:

1. ``ALE/<Game>-v5`` with ``frameskip=1``, no sticky actions and no frame limit (the wrappers below do the skipping);
2. ``MaskScore``: the rectangles of ``SCORE_MASKS`` are set to black in every RGB frame, so neither the reward model
   nor a person can read the reward off the screen (BeamRider's enemy counter and Enduro's dashboard included);
3. ``FixedLengthAtari``: 0-30 no-op starts, frameskip 4 with a max over the last two frames, 84x84 grey
   observations; a game over restarts the game *inside* the episode, lives are never reported, and the episode is
   cut only at its fixed length, so no life-loss or game-over signal reaches the agent or the reward model.
   The reward is the unclipped game score of the skipped frames (what the synthetic oracle compares);
4. Gymnasium's own wrappers from ``gym.make`` (its passive checker, order enforcing) and ``TimeLimit``: the fixed
   length, in agent steps (``EPISODE_STEPS`` unless given);
5. a 4-frame stack (``gymnasium.wrappers.FrameStackObservation``), observations (4, 84, 84) uint8.

Steps 1-3 are ``masked_game``, the entry point of the env's spec, so the time limit that ``gym.make(env.spec)`` puts
right above a spec's base counts agent steps, and the spec rebuilds this stack exactly.

Needs the atari extra: ``pip install "pbrl[atari]"`` (ale-py ships the ROMs; resizing uses OpenCV).
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from pbrl.envs.clips import RenderStopped, check_clip_size
from pbrl.envs.wrappers import STATE_KEY
from pbrl.families import game_of

GAMES = ("BeamRider", "Breakout", "Enduro", "Pong", "Qbert", "Seaquest", "SpaceInvaders")
#: info key: on the step a game ends inside an episode, that game's score (e.g. 21 - 3 = 18 in Pong), else NaN. For
#: evaluations only, to report scores per game as the literature does; neither the agent nor the reward model sees it.
GAME_SCORE_KEY = "finished_game_score"
EPISODE_STEPS = 2500  # agent steps (10,000 frames, about 2.8 minutes of play) per fixed-length episode

#: Screen rectangles (row0, row1, col0, col1) of the 210x160 frame that are blacked out, per game. Found by
#: listing the pixels that change over random play and looking at the frames (docs/atari_masks.png).
SCORE_MASKS: dict[str, list[tuple[int, int, int, int]]] = {
    "BeamRider": [(0, 42, 0, 160)],  # score, sector, enemies-left counter, torpedoes
    "Breakout": [(0, 17, 0, 160)],  # score, lives, player
    "Enduro": [(156, 210, 0, 160)],  # the dashboard: odometer, cars still to pass, day
    "Pong": [(0, 24, 0, 160)],  # both scores, above the top wall
    "Qbert": [(4, 15, 30, 73), (15, 29, 30, 47)],  # score, then the lives under it
    "Seaquest": [(0, 31, 0, 160)],  # score and the reserve submarines
    "SpaceInvaders": [(0, 22, 0, 160)],  # both players' scores
}


STATE_BYTES = 8192  # an emulator state (about 7.8 KB pickled) with its length, as a fixed-size uint8 row
FRAME_RATE = 60.0  # the Atari's frames per second; clips for people show every frame


def encode_state(ale) -> np.ndarray:
    """The emulator's state as a fixed-size uint8 array (4-byte length, then the pickled state).  # (STATE_BYTES,)"""
    raw = pickle.dumps(ale.cloneState())
    if len(raw) + 4 > STATE_BYTES:
        raise ValueError(f"an emulator state of {len(raw)} bytes does not fit in {STATE_BYTES}")
    out = np.zeros(STATE_BYTES, dtype=np.uint8)
    out[:4] = np.frombuffer(len(raw).to_bytes(4, "little"), dtype=np.uint8)
    out[4:4 + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def decode_state(row: np.ndarray):
    n = int.from_bytes(row[:4].tobytes(), "little")
    return pickle.loads(row[4:4 + n].tobytes())


class MaskScore(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Black out ``rects`` in every RGB frame (a new array; the emulator's buffer is never written)."""

    def __init__(self, env: gym.Env, rects: list[tuple[int, int, int, int]]):
        gym.utils.RecordConstructorArgs.__init__(self, rects=rects)
        super().__init__(env)
        self.rects = rects

    def observation(self, frame: np.ndarray) -> np.ndarray:
        return mask_frame(frame, self.rects)


def mask_frame(frame: np.ndarray, rects: list[tuple[int, int, int, int]]) -> np.ndarray:
    out = frame.copy()
    for r0, r1, c0, c1 in rects:
        out[r0:r1, c0:c1] = 0
    return out


def to_84(frame: np.ndarray) -> np.ndarray:
    """An RGB frame as the paper's 84x84 grey input.  # (84, 84) uint8"""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (84, 84), interpolation=cv2.INTER_AREA)


class FixedLengthAtari(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """No-op starts, frameskip with max-pool, 84x84 grey, game over restarts inside a fixed-length episode."""

    def __init__(self, env: gym.Env, frameskip: int = 4, noop_max: int = 30):
        gym.utils.RecordConstructorArgs.__init__(self, frameskip=frameskip, noop_max=noop_max)
        super().__init__(env)
        self.frameskip, self.noop_max = frameskip, noop_max
        self.observation_space = gym.spaces.Box(0, 255, (84, 84), dtype=np.uint8)
        self.last_rgb: np.ndarray | None = None  # the latest (masked) colour frame, for people and videos
        self.game_points = 0.0

    def _start(self, seed: int | None = None) -> np.ndarray:
        frame, _ = self.env.reset(seed=seed)
        for _ in range(int(self.np_random.integers(0, self.noop_max + 1))):
            frame, _, terminated, truncated, _ = self.env.step(0)
            if terminated or truncated:
                frame, _ = self.env.reset()
        self.last_rgb = frame
        return frame

    def _state_info(self) -> dict[str, np.ndarray]:
        """The emulator state the returned observation was taken in, for replaying clips in colour."""
        return {STATE_KEY: encode_state(self.env.unwrapped.ale)}  # type: ignore[attr-defined]

    def reset(self, *, seed: int | None = None, options=None):
        frame = self._start(seed)  # the emulator's reset(seed) also seeds the no-op count
        self.game_points = 0.0  # the score of the game under way
        return to_84(frame), self._state_info()

    def step(self, action):
        total, frames = 0.0, []
        game_over = False
        for _ in range(self.frameskip):
            frame, reward, terminated, truncated, _ = self.env.step(action)
            total += float(reward)
            frames.append(frame)
            if terminated or truncated:
                game_over = True
                break
        pooled = np.maximum(frames[-1], frames[-2]) if len(frames) >= 2 else frames[-1]
        self.last_rgb = frames[-1]
        self.game_points += total
        info = self._state_info()
        if game_over:  # the game starts again; the agent sees only the new screen, never a signal
            pooled = self._start()
            info[GAME_SCORE_KEY], self.game_points = self.game_points, 0.0  # in info only on the step a game ends
        return to_84(pooled), total, False, False, info


class AtariClipRenderer:
    """Full-colour clips of Atari segments for people: each step is replayed from its saved emulator state with the
    step's action for the 4 skipped frames, so a clip shows every frame (60 per second) with the score masked.
    Clips are ``size`` pixels high and keep the screen's 160:210 aspect (``clip_shape``)."""

    SCREEN_SHAPE = (210, 160)  # (height, width) of the emulator's screen

    def __init__(self, env_id: str, size: int = 256):
        from pbrl.extras import require

        check_clip_size(size)
        ale_py = require("ale_py", "atari", "the Atari games")
        gym.register_envs(ale_py)
        self.env = gym.make(env_id, frameskip=1, repeat_action_probability=0.0, full_action_space=False)
        self.env.reset(seed=0)
        self.ale = self.env.unwrapped.ale  # type: ignore[attr-defined]
        self.action_set = self.env.unwrapped._action_set  # type: ignore[attr-defined]
        self.rects = SCORE_MASKS[game_of(env_id)]  # type: ignore[index]
        self.size, self.fps = size, FRAME_RATE

    @classmethod
    def shape_for(cls, size: int) -> tuple[int, int]:
        """The (height, width) of clips ``size`` pixels high: the screen's aspect, not stretched to a square."""
        height, width = cls.SCREEN_SHAPE
        return size, max(1, round(size * width / height))

    @property
    def clip_shape(self) -> tuple[int, int]:
        """(height, width) of every clip this renderer makes, ``frames(...).shape[1:3]``."""
        return self.shape_for(self.size)

    def _screens(self, segment, should_stop):
        """The segment's emulator frames, masked, one at a time; ``should_stop`` is asked before each step."""
        if segment.states is None:
            raise ValueError(f"segment {segment.id} has no emulator states to replay")
        for t, (state, act) in enumerate(zip(segment.states, segment.acts, strict=True)):
            if should_stop is not None and should_stop():
                raise RenderStopped(f"stopped after {t} of {len(segment.states)} steps")
            self.ale.restoreState(decode_state(state))
            for _ in range(4):
                self.ale.act(self.action_set[int(np.argmax(act))])
                yield mask_frame(self.ale.getScreenRGB(), self.rects)

    def replay(self, segment, should_stop=None) -> np.ndarray:
        """Every emulator frame of the segment, masked, at the screen's size.  # (4 T, 210, 160, 3) uint8"""
        return np.stack(list(self._screens(segment, should_stop)))

    def frames(self, segment, should_stop=None) -> np.ndarray:
        """The replayed clip at ``clip_shape``, or ``RenderStopped`` once ``should_stop()`` is true.
        # (4 T, size, clip width, 3) uint8"""
        import cv2

        height, width = self.clip_shape
        out = np.empty((4 * segment.length, height, width, 3), dtype=np.uint8)
        for i, screen in enumerate(self._screens(segment, should_stop)):
            # nearest neighbour: the game's pixels stay sharp blocks, as on the screen
            out[i] = cv2.resize(screen, (width, height), interpolation=cv2.INTER_NEAREST)
        return out

    def close(self) -> None:
        self.env.close()


def masked_game(env_id: str, render_mode: str | None = None, **ale_kwargs) -> gym.Env:
    """Steps 1-3 of the module doc: the base of the env's spec (``ale_kwargs`` go to ALE, over pbrl's settings)."""
    game = game_of(env_id)
    if game is None:
        raise ValueError(f"{env_id!r} is not one of the paper's games: {', '.join(f'ALE/{g}-v5' for g in GAMES)}")
    from pbrl.extras import require

    ale_py = require("ale_py", "atari", "the Atari games")
    require("cv2", "atari", "Atari preprocessing")
    gym.register_envs(ale_py)
    kwargs = {"frameskip": 1, "repeat_action_probability": 0.0, "full_action_space": False,
              "max_num_frames_per_episode": 0, **ale_kwargs}
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    return FixedLengthAtari(MaskScore(env.unwrapped, SCORE_MASKS[game]))  # unwrapped: ALE's TimeLimit would end games


def make_atari(env_id: str, max_episode_steps: int | None = None, render_mode: str | None = None,
               env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """Build one of the seven games with the paper's preprocessing (see the module doc for the order)."""
    if game_of(env_id) is None:
        raise ValueError(f"{env_id!r} is not one of the paper's games: {', '.join(f'ALE/{g}-v5' for g in GAMES)}")
    # A spec of our own under the user's id, with masked_game as its base: gym.make puts the time limit right above
    # the base, where it counts agent steps (above the raw ALE env it would count frames and end games).
    spec = EnvSpec(id=env_id, entry_point=f"{__name__}:masked_game", kwargs={"env_id": env_id, **(env_kwargs or {})},
                   max_episode_steps=max_episode_steps or EPISODE_STEPS)
    env = gym.make(spec, **({} if render_mode is None else {"render_mode": render_mode}))
    return gym.wrappers.FrameStackObservation(env, 4)
