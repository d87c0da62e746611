"""The windows of a validated job: search, selection and test days, holdout or walk-forward.

docs/validation.md, "Windows". A plan is pure arithmetic on the number of trading days.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from optimizer.config import Validation

FOLD_KEY = 1000  # walk-forward fold k (all but the last) searches with spawn keys prefixed by FOLD_KEY + k


@dataclass(frozen=True)
class Split:
    """Day ranges of one split: indices into the job's trading days, ascending."""

    search: range
    selection: range
    test: range

    @property
    def train(self) -> range:
        """Every day before the test window: what ULTA's decision uses."""
        return range(0, self.test.start)

    @property
    def unseen(self) -> range:
        """The days no search saw: the selection and test windows."""
        return range(self.search.stop, self.test.stop)


@dataclass(frozen=True)
class Plan:
    method: str  # holdout | walk_forward | none
    splits: tuple[Split, ...]  # in time order; the last one is the job's own search
    note: str = ""  # why validation was skipped or changed

    @property
    def validating(self) -> bool:
        return self.method != "none"

    @property
    def final(self) -> Split:
        return self.splits[-1]


def plan(days: int, settings: Validation) -> Plan:
    """The splits of ``days`` trading days for ``settings`` (docs/validation.md, "Windows").

    Every window holds at least ``min_test_days``. When the days are too few, validation is
    skipped (one split whose search window is every day, as without validation) and the note
    says why; walk-forward drops folds first, then falls back to a holdout.
    """
    everything = Plan("none", (Split(range(days), range(days, days), range(days, days)),))
    if settings.method == "none":
        return everything
    note = ""
    if settings.method == "walk_forward":
        splits, note = _walk_forward(days, settings)
        if splits:
            return Plan("walk_forward", splits, note)
    test = max(settings.min_test_days, round(settings.test_fraction * days))
    split = _split(days - test, range(days - test, days), settings)
    if split is None:
        windows = 3 if settings.selection == "validated" else 2
        return dataclasses.replace(
            everything,
            note=f"validation skipped: {days} trading days are too few for {windows} windows of at least "
            f"{settings.min_test_days} days (VALIDATION.min_test_days); the job chose in sample on every day",
        )
    return Plan("holdout", (split,), note)


def _split(train: int, test: range, settings: Validation) -> Split | None:
    """Search and selection windows out of the first ``train`` days, or None if they do not fit."""
    if settings.selection == "validated":
        selection = max(settings.min_test_days, round(settings.selection_fraction * train))
    else:
        selection = 0  # the in-sample choice needs no selection window: the search sees the whole training window
    search = train - selection
    if search < settings.min_test_days:
        return None
    return Split(range(0, search), range(search, train), test)


def _walk_forward(days: int, settings: Validation) -> tuple[tuple[Split, ...], str]:
    """Anchored, expanding folds; as many as fit, up to ``folds`` (at least 2)."""
    block = max(settings.min_test_days, round(settings.test_fraction * days / settings.folds))
    for folds in range(settings.folds, 1, -1):
        bounds = [days - (folds - k) * block for k in range(folds + 1)]
        splits = [_split(bounds[k], range(bounds[k], bounds[k + 1]), settings) for k in range(folds)]
        if all(s is not None for s in splits):
            note = (
                f"walk-forward with {folds} folds: {days} trading days allow no more than that"
                if folds < settings.folds
                else ""
            )
            return tuple(s for s in splits if s is not None), note
    return (), (
        f"walk-forward needs 2 folds of at least {settings.min_test_days} test days after a training window; "
        f"{days} trading days allow none, so a single holdout was used"
    )
