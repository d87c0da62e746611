"""Configuration: INI files compatible with the predecessor's ``config_zone.ini``.

Layers, lowest precedence first: defaults < server config file < job sidecar <
environment (``HEAVYOPT_<SECTION>_<KEY>``) < command line (``--set SECTION.key=value``).
Every layer is a ``{section: {key: raw string}}`` mapping; they are merged and parsed
once into frozen dataclasses. Unknown sections or keys and bad values raise
:class:`ConfigError` naming ``section.key`` and where the value came from.

This is the only module that reads the environment.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from algorithms import REGISTRY
from algorithms.fitness import METRICS
from dal.base import redact_url
from errors import ConfigError
from optimizer.config_sources import ALGORITHM_SECTIONS, SECTIONS, Layer, env_layer, overrides_layer, read_ini

DATE_FORMATS = ("auto", "YYYY-MM-DD", "DD-MM-YYYY", "MM-DD-YYYY")
COMPUTE_BACKENDS = ("auto", "numpy", "cupy")
EXECUTORS = ("processes", "ray")
VALIDATION_METHODS = ("holdout", "walk_forward", "none")
SELECTIONS = ("validated", "in_sample")

# Allowed values for string fields, by (section, key).
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("GENERAL", "metric"): METRICS,
    ("INPUT", "date_format"): DATE_FORMATS,
    ("COMPUTE", "backend"): COMPUTE_BACKENDS,
    ("COMPUTE", "executor"): EXECUTORS,
    ("VALIDATION", "method"): VALIDATION_METHODS,
    ("VALIDATION", "selection"): SELECTIONS,
}
# Inclusive numeric bounds, by (section, key); None means unbounded on that side.
_BOUNDS: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("GENERAL", "ga_generations"): (1, None),
    ("GENERAL", "strat_limit"): (0, None),
    ("GENERAL", "seed"): (0, 2**63 - 1),
    ("PORTFOLIO", "min_size"): (2, None),
    ("PORTFOLIO", "max_size"): (2, None),
    ("PORTFOLIO", "population_size"): (4, None),
    ("PORTFOLIO", "mutation_rate"): (0.0, 1.0),
    ("OPTIMIZATION", "correlation_penalty_weight"): (0.0, None),
    ("OPTIMIZATION", "penalty_factor"): (0.0, None),
    ("OPTIMIZATION", "drawdown_threshold"): (0.0, None),
    ("OPTIMIZATION", "evaluation_budget"): (1, None),
    ("OPTIMIZATION", "periods_per_year"): (1, None),
    ("OPTIMIZATION", "algorithm_timeout_s"): (0.0, None),
    ("ZONE_SPECIFIC_OPTIMIZATION", "min_size"): (2, None),
    ("ZONE_SPECIFIC_OPTIMIZATION", "max_size"): (2, None),
    ("COMPUTE", "threads"): (0, 256),
    ("COMPUTE", "workers"): (0, 256),
    ("DATABASE", "keep_pnl_jobs"): (0, None),
    ("DATABASE", "lock_wait_s"): (0.0, None),
    ("DATABASE", "connect_timeout_s"): (0.1, None),
    ("DATABASE", "query_timeout_s"): (0.1, None),
    ("DATABASE", "breaker_failures"): (1, None),
    ("DATABASE", "breaker_cooldown_s"): (0.0, None),
    ("COMPUTE", "gpu_memory_limit_mb"): (0.0, None),
    ("COMPUTE", "ray_connect_timeout_s"): (0.1, None),
    ("QUEUE", "settle_s"): (0.0, None),
    ("QUEUE", "rescan_s"): (0.5, None),
    ("QUEUE", "input_wait_s"): (0.0, None),
    ("QUEUE", "poll_interval_s"): (0.1, None),
    ("QUEUE", "workers"): (1, 64),
    ("QUEUE", "job_timeout_s"): (1.0, None),
    ("QUEUE", "max_attempts"): (1, 100),
    ("QUEUE", "max_input_mb"): (0.001, None),
    ("QUEUE", "stop_grace_s"): (0.0, None),
    ("API", "port"): (0, 65535),
    ("VALIDATION", "test_fraction"): (0.01, 0.9),
    ("VALIDATION", "min_test_days"): (2, None),
    ("VALIDATION", "selection_fraction"): (0.01, 0.9),
    ("VALIDATION", "folds"): (2, 50),
    ("VALIDATION", "bootstrap_samples"): (0, 1_000_000),
    ("VALIDATION", "bootstrap_block_days"): (0.0, None),
    ("VALIDATION", "archive_per_run"): (1, 100),
    ("VALIDATION", "pbo_blocks"): (0, 16),
}


@dataclass(frozen=True)
class General:
    metric: str = "ratio"
    ga_generations: int | None = None  # legacy: GENETIC_ALGORITHM.generations
    strat_limit: int = 0  # 0 = use every strategy
    seed: int = 42
    book: str = ""  # what "the same book" means for "since last time"; empty = the input file's name


@dataclass(frozen=True)
class Portfolio:
    min_size: int = 35
    max_size: int = 100
    population_size: int | None = None  # legacy: GENETIC_ALGORITHM.population_size
    mutation_rate: float | None = None  # legacy: GENETIC_ALGORITHM.mutation_rate


@dataclass(frozen=True)
class Optimization:
    apply_ulta_logic: bool = True
    correlation_penalty_weight: float = 10.0
    drawdown_threshold: float = 0.0
    zone_optimization_enabled: bool = False
    balanced_mode: bool = False  # accepted for compatibility with config_zone.ini; no effect
    evaluation_budget: int = 10_000
    algorithm_timeout_s: float = 600.0  # per algorithm and size; 0 = no limit
    periods_per_year: int = 252
    guided: bool = True  # starts and proposals drawn from what the data says (algorithms.guide); false: blind


@dataclass(frozen=True)
class Algorithms:
    use_genetic_algorithm: bool = True
    use_particle_swarm: bool = True
    use_simulated_annealing: bool = True
    use_differential_evolution: bool = True
    use_ant_colony: bool = True
    use_hill_climbing: bool = True
    use_bayesian_optimization: bool = True
    use_random_search: bool = True


@dataclass(frozen=True)
class ZoneSpecific:
    enable: bool = False
    min_size: int = 10
    max_size: int = 30


@dataclass(frozen=True)
class Validation:
    """Out-of-sample validation of the choice (docs/validation.md)."""

    method: str = "holdout"  # holdout | walk_forward | none (today's in-sample job on every day)
    test_fraction: float = 0.25  # the latest days kept from everything that chooses, only reported
    min_test_days: int = 10  # the fewest days of any window: training, selection, test
    selection_fraction: float = 0.25  # the latest part of the days before the test: candidates are compared there
    folds: int = 4  # walk-forward: anchored, expanding training windows
    selection: str = "validated"  # validated | in_sample (the highest in-sample fitness, as before)
    bootstrap_samples: int = 1000  # stationary-bootstrap resamples for the confidence intervals; 0 = none
    bootstrap_block_days: float = 0.0  # mean block length; 0 = days^(1/3)
    archive_per_run: int = 4  # distinct good portfolios kept per size × algorithm as candidates
    pbo_blocks: int = 0  # CSCV blocks (even); 0 = as many as the days allow, at most 10


@dataclass(frozen=True)
class Input:
    date_format: str = "auto"


@dataclass(frozen=True)
class Database:
    url: str = ""  # empty: duckdb:///<data_dir>/heavyopt.duckdb
    data_dir: str = ""  # empty: $XDG_DATA_HOME/heavyopt or ~/.local/share/heavyopt
    keep_pnl_jobs: int = 5  # P&L rows of older jobs are deleted; job records and results are kept
    lock_wait_s: float = 600.0  # how long to wait while another process (another job) uses the DuckDB file
    fallback: bool = True  # a heavydb:// URL that fails: run the job on the embedded DuckDB file instead
    connect_timeout_s: float = 10.0  # HeavyDB: connect and log in within this
    query_timeout_s: float = 300.0  # HeavyDB: each statement or load within this
    breaker_failures: int = 3  # HeavyDB failures in a row before it is skipped for breaker_cooldown_s
    breaker_cooldown_s: float = 300.0

    def __repr__(self) -> str:  # the URL may carry a password
        return f"Database(url={redact_url(self.url)!r}, data_dir={self.data_dir!r})"


@dataclass(frozen=True)
class Compute:
    backend: str = "auto"
    workers: int = 0  # processes running algorithms in parallel; 0 = one per CPU core, 1 = in-process
    threads: int = 0  # threads inside one batched evaluation; 0 = the cores left per worker
    gpu_memory_limit_mb: float = 0.0  # cap on CuPy's memory pool; 0 = 90 % of the free device memory
    executor: str = "processes"  # where the search's tasks run: this machine's processes, or a Ray cluster
    ray_address: str = "auto"  # auto: the cluster this machine belongs to; local: start one here; or host:port
    ray_connect_timeout_s: float = 10.0  # how long a cluster address may take to answer before falling back
    fallback: bool = True  # an unreachable cluster runs the search on local processes (false: the job fails)


@dataclass(frozen=True)
class Output:
    dir: str = "output"


@dataclass(frozen=True)
class Queue:
    """The job queue daemon on the share (``heavyopt watch``); see docs/operations.md."""

    share: str = ""  # share root holding input/, jobs/, output/, archive/
    unc_root: str = ""  # the share as Windows users reach it, e.g. \\server\optimizer_share: paths shown to them
    settle_s: float = 2.0  # a file counts once its size and mtime are unchanged this long
    input_wait_s: float = 120.0  # a job file waits this long for the CSV it names to appear in input/
    rescan_s: float = 30.0  # full rescan of input/ and jobs/queue/ besides the file events
    csv_drops: bool = True  # a CSV dropped into input/ is a job; false: only job files (and POST /jobs) are
    poll: bool = False  # poll instead of inotify (a share mounted over CIFS/NFS)
    poll_interval_s: float = 2.0
    workers: int = 1  # jobs run at the same time
    job_timeout_s: float = 3600.0
    max_attempts: int = 3  # starts of one job across daemon crashes/restarts before it is failed
    max_input_mb: float = 2048.0
    stop_grace_s: float = 60.0  # on SIGTERM, how long running jobs may take to finish


@dataclass(frozen=True)
class Api:
    """The status API (``heavyopt serve``); see docs/operations.md."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""  # empty: the endpoints that change state are off
    allowed_hosts: str = ""  # comma-separated names the API answers to besides loopback and API.host

    def __repr__(self) -> str:  # never show the token
        return f"Api(host={self.host!r}, port={self.port!r}, token={'***' if self.token else ''!r})"


@dataclass(frozen=True)
class Config:
    general: General = field(default_factory=General)
    portfolio: Portfolio = field(default_factory=Portfolio)
    optimization: Optimization = field(default_factory=Optimization)
    algorithms: Algorithms = field(default_factory=Algorithms)
    zone_specific: ZoneSpecific = field(default_factory=ZoneSpecific)
    zone_weights: tuple[tuple[str, float], ...] = ()
    validation: Validation = field(default_factory=Validation)
    input: Input = field(default_factory=Input)
    database: Database = field(default_factory=Database)
    compute: Compute = field(default_factory=Compute)
    output: Output = field(default_factory=Output)
    queue: Queue = field(default_factory=Queue)
    api: Api = field(default_factory=Api)
    algorithm_settings: tuple[tuple[str, Any], ...] = field(
        default_factory=lambda: tuple((flag, cls()) for flag, cls in REGISTRY.items())
    )

    def algorithm(self, flag: str) -> Any:
        """The configured instance of the algorithm behind ``[ALGORITHMS] flag``."""
        return dict(self.algorithm_settings)[flag]

    @property
    def penalty_weight(self) -> float:
        """λ of ``fitness = metric − λ·avgcorr``."""
        return self.optimization.correlation_penalty_weight

    @property
    def sizes(self) -> range:
        return range(self.portfolio.min_size, self.portfolio.max_size + 1)

    @property
    def zone_sizes(self) -> range:
        """Sizes of each zone's own optimisation (zone mode)."""
        return range(self.zone_specific.min_size, self.zone_specific.max_size + 1)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain, JSON-ready view by INI section (secrets redacted)."""
        out: dict[str, dict[str, Any]] = {}
        for section, attr in SECTIONS.items():
            if attr == "zone_weights":
                out[section] = dict(self.zone_weights)
                continue
            values = dataclasses.asdict(getattr(self, attr))
            if section == "DATABASE":
                values["url"] = redact_url(values["url"])
            if section == "API" and values["token"]:
                values["token"] = "***"
            out[section] = values
        for flag, cls in REGISTRY.items():
            out[cls.section] = dataclasses.asdict(self.algorithm(flag))
        return out


def _parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected True or False")


def _coerce(
    section: str, key: str, raw: str, kind: Any, where: str, bounds: dict[str, tuple[Any, Any]] | None = None
) -> Any:
    name = f"{section}.{key}"
    text = raw.strip()
    try:
        if kind is bool:
            value: Any = _parse_bool(text)
        elif kind is int or kind == (int | None):
            value = int(text)
        elif kind is float or kind == (float | None):
            value = float(text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("expected a finite number")
        else:
            value = text
    except ValueError as exc:
        kind_name = {bool: "True or False", int: "a whole number", int | None: "a whole number"}.get(kind, "a number")
        detail = str(exc) if "expected" in str(exc) else f"expected {kind_name}"
        raise ConfigError(f"config error: {name} = {raw!r} ({where}): {detail}") from None
    choices = _CHOICES.get((section, key))
    if choices is not None:
        match = next((c for c in choices if c.lower() == text.lower()), None)
        if match is None:
            raise ConfigError(
                f"config error: {name} = {raw!r} ({where}): must be one of {', '.join(repr(c) for c in choices)}"
            )
        value = match
    low, high = (bounds or {}).get(key) or _BOUNDS.get((section, key), (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        rng = f"≥ {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"config error: {name} = {raw!r} ({where}): must be {rng}")
    return value


def _build_section(
    section: str, cls: type, values: dict[str, tuple[str, str]], bounds: dict[str, tuple[Any, Any]] | None = None
) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    lowered = {k.lower(): k for k in known}
    kwargs: dict[str, Any] = {}
    for key, (raw, where) in values.items():
        attr = lowered.get(key.lower())
        if attr is None:
            hint = difflib.get_close_matches(key.lower(), list(lowered), n=1)
            extra = f" (did you mean {section}.{hint[0]}?)" if hint else ""
            raise ConfigError(f"config error: {section}.{key} ({where}) is not a known key{extra}")
        kwargs[attr] = _coerce(section, attr, raw, hints[attr], where, bounds)
    return cls(**kwargs)


def _merge(layers: list[Layer]) -> Layer:
    merged: Layer = {}
    for layer in layers:
        for section, keys in layer.items():
            target = merged.setdefault(section, {})
            for key, value in keys.items():
                # Keys match case-insensitively across layers, except zone names.
                existing = next((k for k in target if k.lower() == key.lower()), None)
                if existing is not None and section != "ZONE_WEIGHTS":
                    del target[existing]
                target[key] = value
    return merged


def _zone_weights(values: dict[str, tuple[str, str]]) -> tuple[tuple[str, float], ...]:
    weights = []
    for zone, (raw, where) in values.items():
        weight = _coerce("ZONE_WEIGHTS", zone, raw, float, where)
        if weight < 0:
            raise ConfigError(f"config error: ZONE_WEIGHTS.{zone} = {raw!r} ({where}): must be ≥ 0")
        weights.append((zone, weight))
    return tuple(weights)


def build_config(layers: list[Layer]) -> Config:
    """Merge layers (lowest precedence first), parse and cross-check them."""
    merged = _merge([_resolve_aliases(layer) for layer in layers])
    hints = get_type_hints(Config)
    kwargs: dict[str, Any] = {}
    for section, attr in SECTIONS.items():
        values = merged.get(section, {})
        if attr == "zone_weights":
            kwargs[attr] = _zone_weights(values)
        else:
            kwargs[attr] = _build_section(section, hints[attr], values)
    kwargs["algorithm_settings"] = tuple(
        (flag, _build_section(section, REGISTRY[flag], merged.get(section, {}), REGISTRY[flag].bounds))
        for section, flag in ALGORITHM_SECTIONS.items()
    )
    config = Config(**kwargs)
    return _cross_check(config)


# Legacy key -> current key, by section. Resolved within each layer, so precedence between layers holds.
ALIASES = {("OPTIMIZATION", "penalty_factor"): "correlation_penalty_weight"}
# Legacy GA keys, copied into [GENETIC_ALGORITHM] within their layer unless that layer sets the GA key itself.
LEGACY_COPIES = {
    ("PORTFOLIO", "population_size"): ("GENETIC_ALGORITHM", "population_size"),
    ("PORTFOLIO", "mutation_rate"): ("GENETIC_ALGORITHM", "mutation_rate"),
    ("GENERAL", "ga_generations"): ("GENETIC_ALGORITHM", "generations"),
}


def _resolve_aliases(layer: Layer) -> Layer:
    out: Layer = {section: dict(keys) for section, keys in layer.items()}
    for (section, old), new in ALIASES.items():
        keys = out.get(section, {})
        old_key = next((k for k in keys if k.lower() == old), None)
        if old_key is None:
            continue
        value = keys.pop(old_key)
        parsed = _coerce(section, old, value[0], float, value[1])  # errors name the key the user wrote
        new_key = next((k for k in keys if k.lower() == new), None)
        if new_key is not None and _coerce(section, new, keys[new_key][0], float, keys[new_key][1]) != parsed:
            raise ConfigError(
                f"config error: {section}.{old} and {section}.{new} ({value[1]}) are the same setting "
                "with different values; keep one"
            )
        keys.setdefault(new_key or new, value)
    for (section, old), (target, new) in LEGACY_COPIES.items():
        old_key = next((k for k in out.get(section, {}) if k.lower() == old), None)
        if old_key is not None:
            into = out.setdefault(target, {})
            if not any(k.lower() == new for k in into):
                into[new] = out[section][old_key]
    return out


def _cross_check(config: Config) -> Config:
    limit = config.general.strat_limit
    if 0 < limit < config.portfolio.min_size:
        raise ConfigError(
            f"config error: GENERAL.strat_limit = {limit} keeps fewer strategies than "
            f"PORTFOLIO.min_size = {config.portfolio.min_size}; raise the limit (0 = all) or lower min_size"
        )
    if 0 < config.validation.bootstrap_block_days < 1:
        raise ConfigError(
            f"config error: VALIDATION.bootstrap_block_days = {config.validation.bootstrap_block_days:g} is below one "
            "day; use 0 (days^(1/3)) or a mean block of at least 1 day"
        )
    if config.validation.pbo_blocks % 2:
        raise ConfigError(
            f"config error: VALIDATION.pbo_blocks = {config.validation.pbo_blocks} must be even "
            "(half the blocks in sample, half out), or 0 to choose from the days"
        )
    unc = config.queue.unc_root
    if unc and not re.fullmatch(r"(\\\\[^\\/]+\\[^\\/]+|[A-Za-z]:)(\\[^\\/]+)*\\?", unc):
        raise ConfigError(
            f"config error: QUEUE.unc_root = {unc!r} is not a Windows path to the share; write it as Explorer "
            "shows it, e.g. \\\\server\\optimizer_share or Z:\\"
        )
    for section, part in (("PORTFOLIO", config.portfolio), ("ZONE_SPECIFIC_OPTIMIZATION", config.zone_specific)):
        if part.min_size > part.max_size:
            raise ConfigError(
                f"config error: {section}.min_size = {part.min_size} is larger than "
                f"{section}.max_size = {part.max_size}"
            )
    return config


def load_config(
    files: list[str | Path] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Config from INI ``files`` (server file first, then a job sidecar), the environment, and ``--set`` items."""
    layers = [read_ini(p) for p in files or []]
    layers.append(env_layer(os.environ if environ is None else environ))
    layers.append(overrides_layer(overrides or []))
    return build_config(layers)


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "heavyopt"


def data_dir(config: Config) -> Path:
    return Path(config.database.data_dir) if config.database.data_dir else default_data_dir()


def embedded_url(config: Config) -> str:
    """The embedded DuckDB file under the data directory (the default, and the fallback)."""
    return f"duckdb:///{data_dir(config) / 'heavyopt.duckdb'}"


def database_url(config: Config) -> str:
    """The configured URL, or the embedded DuckDB file under the data directory."""
    return config.database.url or embedded_url(config)
