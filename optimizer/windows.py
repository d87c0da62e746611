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
    """Day ranges of one split: indices into the job's trading days, ascending.

    ``train``: what ULTA's decision, correlation and the search see. ``selection``: where the
    candidates are compared (empty for the in-sample choice). ``test``: seen by nothing that chooses.
    """

    train: range
    selection: range
    test: range

    @property
    def unseen(self) -> range:
        """The days nothing looked at before the choice: the selection and test windows."""
        return range(self.train.stop, self.test.stop)


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
    skipped (one split whose training window is every day, as without validation) and the note
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


def _split(before_test: int, test: range, settings: Validation) -> Split | None:
    """Training and selection windows out of the first ``before_test`` days, or None if they do not fit."""
    if settings.selection == "validated":
        selection = max(settings.min_test_days, round(settings.selection_fraction * before_test))
    else:
        selection = 0  # the in-sample choice needs no selection window: training takes every day before the test
    train = before_test - selection
    if train < settings.min_test_days:
        return None
    return Split(range(0, train), range(train, before_test), test)


def _walk_forward(days: int, settings: Validation) -> tuple[tuple[Split, ...], str]:
    """Anchored, expanding folds; as many as fit, up to ``folds`` (at least 2).

    The last ``test_fraction`` of the days is cut into the folds' test windows; with fewer
    folds each window is longer, so the out-of-sample span stays the same.
    """
    for folds in range(settings.folds, 1, -1):
        block = max(settings.min_test_days, round(settings.test_fraction * days / folds))
        bounds = [days - (folds - k) * block for k in range(folds + 1)]
        splits = [_split(bounds[k], range(bounds[k], bounds[k + 1]), settings) for k in range(folds)]
        if all(s is not None for s in splits):
            note = (
                f"walk-forward with {folds} folds of {block} test days: {days} trading days allow no more "
                f"(VALIDATION.folds = {settings.folds})"
                if folds < settings.folds
                else ""
            )
            return tuple(s for s in splits if s is not None), note
    return (), (
        f"walk-forward needs 2 folds of at least {settings.min_test_days} test days after a training window; "
        f"{days} trading days allow none, so a single holdout was used"
    )
