"""Learning in the field: drifting streams, the online learner and test-then-train evaluation."""

from .drift import SCENARIOS, make_stream, scenario_names
from .stream import Stream, StreamError, label_mask

__all__ = ["SCENARIOS", "make_stream", "scenario_names", "Stream", "StreamError", "label_mask"]
