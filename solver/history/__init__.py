"""Build history, as ``docker buildx history`` keeps it: one record per build under the cache directory."""

from solver.history.record import BUILT, CACHED, FAILED, BuildRecord, StepRecord
from solver.history.diff import RecordDiff, diff
from solver.history.recorder import Recorder
from solver.history.store import DEFAULT_KEEP_AGE, DEFAULT_KEEP_COUNT, HistoryError, HistoryStore, load, parse_duration

__all__ = ["RecordDiff", "Recorder", "diff", "BUILT", "CACHED", "FAILED", "BuildRecord", "StepRecord", "DEFAULT_KEEP_AGE",
           "DEFAULT_KEEP_COUNT", "HistoryError", "HistoryStore", "load", "parse_duration"]
