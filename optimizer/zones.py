"""Zone data (brief §6): excluded rows, zone weights, the weighted combination, each zone's rows."""

from __future__ import annotations

import dataclasses

import numpy as np

from errors import ConfigError, InputError
from optimizer.config import Config
from optimizer.loader import Dataset

EXCLUDED_ZONES = ("", "outside market")  # compared case-insensitively, after stripping
DEFAULT_WEIGHT = 1.0


def zone_mode(config: Config) -> bool:
    """Zone mode: ``OPTIMIZATION.zone_optimization_enabled`` (or the legacy ``ZONE_SPECIFIC_OPTIMIZATION.enable``)."""
    return config.optimization.zone_optimization_enabled or config.zone_specific.enable


def exclude_rows(dataset: Dataset) -> tuple[Dataset, int]:
    """Drop rows whose zone is empty or ``Outside Market``; returns the rest and how many were dropped."""
    if dataset.zones is None:
        return dataset, 0
    keep = np.array([z.strip().lower() not in EXCLUDED_ZONES for z in dataset.zones])
    dropped = int((~keep).sum())
    if dropped == 0:
        return dataset, 0
    if len(np.unique(dataset.dates[keep])) < 2:
        raise InputError(
            f"input error: {dataset.source.rsplit('/', 1)[-1]}, column 'Zone': after dropping {dropped} rows with an "
            "empty or 'Outside Market' zone, fewer than 2 trading days are left"
        )
    pnl = dataset.pnl[keep]
    pnl.setflags(write=False)
    return (
        dataclasses.replace(
            dataset,
            dates=dataset.dates[keep],
            zones=tuple(z for z, k in zip(dataset.zones, keep.tolist(), strict=True) if k),
            pnl=pnl,
            blank_columns=tuple(c for c, k in zip(dataset.blank_columns, keep.tolist(), strict=True) if k),
            metadata={
                name: tuple(v for v, k in zip(values, keep.tolist(), strict=True) if k)
                for name, values in dataset.metadata.items()
            },
        ),
        dropped,
    )


def zone_names(dataset: Dataset) -> list[str]:
    return sorted(set(dataset.zones or ()))


def zone_weights(config: Config, zones: list[str]) -> dict[str, float]:
    """``[ZONE_WEIGHTS]`` normalised to sum 1 over the input's zones; a zone not listed weighs 1.

    Raises
    ------
    ConfigError
        A weight names a zone the input does not have, or every weight is 0.
    """
    by_lower = {z.lower(): z for z in zones}
    weights = dict.fromkeys(zones, DEFAULT_WEIGHT)  # a zone not listed keeps the default; 0 leaves it out
    for name, weight in config.zone_weights:
        zone = by_lower.get(name.strip().lower())
        if zone is None:
            raise ConfigError(
                f"config error: ZONE_WEIGHTS.{name}: the input has no zone {name!r} (its zones: {', '.join(zones)}); "
                "remove the key or fix its name"
            )
        weights[zone] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError("config error: ZONE_WEIGHTS: every weight is 0; give at least one zone a positive weight")
    return {zone: weight / total for zone, weight in weights.items()}


def combine(dataset: Dataset, weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sum over zones of each date's rows.

    Because a portfolio's series is the mean of its members, the ``weights``-weighted sum
    over zones of each zone's member mean equals the member mean of this combination, so
    the combined optimisation is an ordinary one on it. Only zones with a positive weight
    take part: a date none of them has is not a day of the combination. A zone with no row
    on a date counts as 0 that day (its strategies did not trade).

    Returns
    -------
    dates : datetime64[D], shape (days,), ascending.
    pnl : float64, shape (days, S).
    """
    factor = np.array([weights[z] for z in dataset.zones or ()])
    counted = factor > 0
    unique, inverse = np.unique(dataset.dates[counted], return_inverse=True)
    combined = np.zeros((unique.shape[0], dataset.pnl.shape[1]))
    np.add.at(combined, inverse, dataset.pnl[counted] * factor[counted, None])
    return unique, combined


def check_zones(dataset: Dataset, config: Config, strategies: int) -> None:
    """Zone mode's preconditions, checked before any work: every zone has 2 days, and the
    zone sizes can be met.

    Raises
    ------
    InputError, ConfigError
        Naming the zone, or the key and the number of strategies.
    """
    name = dataset.source.rsplit("/", 1)[-1]
    for zone in zone_names(dataset):
        days = len(np.unique(zone_rows(dataset, zone)[0]))
        if days < 2:
            raise InputError(
                f"input error: {name}, column 'Zone': zone {zone!r} has {days} trading day; each zone needs at least "
                "2 in zone mode — add its days, remove its rows, or turn zone mode off"
            )
    low = config.zone_specific.min_size
    available = min(strategies, config.general.strat_limit or strategies)
    if low > available:
        raise ConfigError(
            f"config error: ZONE_SPECIFIC_OPTIMIZATION.min_size = {low} is more than the {available} strategies "
            "available to each zone; lower it"
        )


def zone_rows(dataset: Dataset, zone: str) -> tuple[np.ndarray, np.ndarray]:
    """One zone's rows, dates ascending: (dates (days,), pnl (days, S))."""
    mask = np.array([z == zone for z in dataset.zones or ()])
    order = np.argsort(dataset.dates[mask], kind="stable")
    return dataset.dates[mask][order], dataset.pnl[mask][order]
