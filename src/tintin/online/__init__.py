"""Learning in the field: drifting streams, the online learner and test-then-train evaluation."""

from .drift import SCENARIOS, make_stream, scenario_names
from .learner import UPDATE_MODES, OnlineLearner, ReplayBuffer, online_lr
from .stream import Stream, StreamError, label_mask

__all__ = ["SCENARIOS", "make_stream", "scenario_names", "UPDATE_MODES", "OnlineLearner", "ReplayBuffer", "online_lr", "Stream",
           "StreamError", "label_mask"]
