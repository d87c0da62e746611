"""Configuration (brief §9): predecessor INI files, validation, layer precedence, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from errors import ConfigError
from optimizer.config import Config, database_url, load_config

ALGORITHM_FLAGS = (
    "use_genetic_algorithm",
    "use_particle_swarm",
    "use_simulated_annealing",
    "use_differential_evolution",
    "use_ant_colony",
    "use_hill_climbing",
    "use_bayesian_optimization",
    "use_random_search",
)

# Shaped like the predecessor's config_zone.ini; section names in mixed case on purpose.
CONFIG_ZONE_INI = """\
[GENERAL]
metric = Sharpe
ga_generations = 50
strat_limit = 2000

[portfolio]
min_size = 20
max_size = 40
population_size = 60
mutation_rate = 0.2

[Optimization]
apply_ulta_logic = False
penalty_factor = 6.5
drawdown_threshold = 0.25
zone_optimization_enabled = True
balanced_mode = False

[ALGORITHMS]
use_genetic_algorithm = True
use_particle_swarm = False
use_simulated_annealing = True
use_differential_evolution = False
use_ant_colony = True
use_hill_climbing = False
use_bayesian_optimization = True
use_random_search = False

[ZONE_SPECIFIC_OPTIMIZATION]
enable = True
min_size = 5
max_size = 15

[ZONE_WEIGHTS]
A = 1
B = 0.5
"""

SECRET_URL = "heavydb://admin:s3cret@host:6274/db"


def _ini(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _config_error(*args: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


# --- defaults and the predecessor file --------------------------------------------------------


def test_defaults() -> None:
    config = load_config(environ={})
    assert config == Config()
    assert config.general.metric == "ratio"
    assert config.sizes == range(35, 101)
    assert config.penalty_weight == 10.0
    assert config.optimization.evaluation_budget == 10_000
    assert config.optimization.apply_ulta_logic is True
    assert all(getattr(config.algorithms, flag) is True for flag in ALGORITHM_FLAGS)
    assert config.zone_weights == ()
    assert config.input.date_format == "auto"


def test_predecessor_config_zone_ini_parses(tmp_path: Path) -> None:
    config = load_config([_ini(tmp_path / "config_zone.ini", CONFIG_ZONE_INI)], environ={})
    assert config.general.metric == "sharpe"
    assert config.general.ga_generations == 50
    assert config.general.strat_limit == 2000
    assert config.portfolio.min_size == 20
    assert config.portfolio.max_size == 40
    assert config.sizes == range(20, 41)
    assert config.portfolio.population_size == 60
    assert config.portfolio.mutation_rate == 0.2
    assert config.optimization.apply_ulta_logic is False
    assert config.optimization.drawdown_threshold == 0.25
    assert config.optimization.zone_optimization_enabled is True
    assert config.optimization.balanced_mode is False
    assert {flag: getattr(config.algorithms, flag) for flag in ALGORITHM_FLAGS} == {
        "use_genetic_algorithm": True,
        "use_particle_swarm": False,
        "use_simulated_annealing": True,
        "use_differential_evolution": False,
        "use_ant_colony": True,
        "use_hill_climbing": False,
        "use_bayesian_optimization": True,
        "use_random_search": False,
    }
    assert config.zone_specific.enable is True
    assert (config.zone_specific.min_size, config.zone_specific.max_size) == (5, 15)
    assert config.zone_weights == (("A", 1.0), ("B", 0.5))
    assert config.to_dict()["ZONE_WEIGHTS"] == {"A": 1.0, "B": 0.5}


def test_penalty_factor_becomes_the_penalty_weight(tmp_path: Path) -> None:
    config = load_config([_ini(tmp_path / "c.ini", "[OPTIMIZATION]\npenalty_factor = 6.5\n")], environ={})
    assert config.penalty_weight == 6.5
    assert config.optimization.correlation_penalty_weight == 6.5


def test_penalty_factor_and_weight_may_agree(tmp_path: Path) -> None:
    text = "[OPTIMIZATION]\npenalty_factor = 4\ncorrelation_penalty_weight = 4.0\n"
    assert load_config([_ini(tmp_path / "c.ini", text)], environ={}).penalty_weight == 4.0


@pytest.mark.parametrize("section", ["PORTFOLIO", "portfolio", "Portfolio", "pOrTfOlIo"])
def test_section_names_match_case_insensitively(tmp_path: Path, section: str) -> None:
    config = load_config([_ini(tmp_path / "c.ini", f"[{section}]\nmin_size = 3\nmax_size = 4\n")], environ={})
    assert config.sizes == range(3, 5)


def test_to_dict_is_json_ready(tmp_path: Path) -> None:
    config = load_config([_ini(tmp_path / "config_zone.ini", CONFIG_ZONE_INI)], environ={})
    round_trip = json.loads(json.dumps(config.to_dict()))
    assert round_trip["PORTFOLIO"]["min_size"] == 20
    assert round_trip["OPTIMIZATION"]["apply_ulta_logic"] is False


# --- errors -----------------------------------------------------------------------------------

NAME = "server.ini"

ERROR_CASES: list[tuple[str, str, list[str]]] = [
    # (id, INI text, fragments the message must contain besides the file name)
    (
        "unknown-key-near-miss",
        "[PORTFOLIO]\nmin_sise = 30\n",
        ["PORTFOLIO.min_sise", "did you mean PORTFOLIO.min_size"],
    ),
    ("unknown-key", "[GENERAL]\ncolour = blue\n", ["GENERAL.colour", "not a known key"]),
    ("unknown-section", "[PORTFOLIOS]\nmin_size = 30\n", ["[PORTFOLIOS]", "unknown section"]),
    ("unknown-section-far", "[WIDGETS]\nx = 1\n", ["[WIDGETS]", "unknown section"]),
    ("bad-bool", "[ALGORITHMS]\nuse_ant_colony = maybe\n", ["ALGORITHMS.use_ant_colony", "'maybe'", "True or False"]),
    ("bad-int", "[GENERAL]\nga_generations = ten\n", ["GENERAL.ga_generations", "'ten'", "whole number"]),
    ("fractional-int", "[PORTFOLIO]\nmin_size = 3.5\n", ["PORTFOLIO.min_size", "'3.5'"]),
    ("bad-float", "[PORTFOLIO]\nmutation_rate = lots\n", ["PORTFOLIO.mutation_rate", "'lots'", "number"]),
    ("nan-float", "[OPTIMIZATION]\npenalty_factor = nan\n", ["OPTIMIZATION.penalty_factor", "finite"]),
    ("out-of-range", "[PORTFOLIO]\nmutation_rate = 2\n", ["PORTFOLIO.mutation_rate", "'2'", "between 0.0 and 1.0"]),
    ("below-minimum", "[PORTFOLIO]\nmin_size = 1\n", ["PORTFOLIO.min_size", "≥ 2"]),
    ("negative-zone-weight", "[ZONE_WEIGHTS]\nA = -1\n", ["ZONE_WEIGHTS.A"]),
    ("bad-choice", "[GENERAL]\nmetric = foo\n", ["GENERAL.metric", "'foo'", "'ratio'"]),
    ("bad-date-format", "[INPUT]\ndate_format = DD/MM/YY\n", ["INPUT.date_format", "'DD-MM-YYYY'"]),
    ("min-over-max", "[PORTFOLIO]\nmin_size = 50\nmax_size = 40\n", ["PORTFOLIO.min_size", "PORTFOLIO.max_size"]),
    (
        "zone-min-over-max",
        "[ZONE_SPECIFIC_OPTIMIZATION]\nmin_size = 31\n",
        ["ZONE_SPECIFIC_OPTIMIZATION.min_size", "ZONE_SPECIFIC_OPTIMIZATION.max_size"],
    ),
    (
        "penalty-conflict",
        "[OPTIMIZATION]\npenalty_factor = 5\ncorrelation_penalty_weight = 7\n",
        ["OPTIMIZATION.penalty_factor", "OPTIMIZATION.correlation_penalty_weight"],
    ),
    ("not-ini", "Date,A,B\n2023-01-02,1,2\n", ["not a valid INI file"]),
    ("duplicate-key", "[PORTFOLIO]\nmin_size = 3\nmin_size = 4\n", ["not a valid INI file"]),
]

# Cross-checks run on merged layers, so they cannot name the one file.
NO_FILE_NAME = {"min-over-max", "zone-min-over-max", "penalty-conflict"}


@pytest.mark.parametrize(("case", "text", "fragments"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_config_errors_name_section_key_and_file(tmp_path: Path, case: str, text: str, fragments: list[str]) -> None:
    message = _config_error([_ini(tmp_path / NAME, text)], environ={})
    if case not in NO_FILE_NAME:
        assert NAME in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    message = _config_error([tmp_path / "absent.ini"], environ={})
    assert "absent.ini" in message
    assert "not found" in message


def test_unknown_key_from_environment_names_the_variable() -> None:
    message = _config_error(environ={"HEAVYOPT_PORTFOLIO_MIN_SISE": "30"})
    assert "PORTFOLIO.min_sise" in message
    assert "HEAVYOPT_PORTFOLIO_MIN_SISE" in message


def test_bad_value_from_override_names_the_override() -> None:
    message = _config_error(environ={}, overrides=["PORTFOLIO.max_size=many"])
    assert "PORTFOLIO.max_size" in message
    assert "--set" in message


@pytest.mark.parametrize(
    "item", ["PORTFOLIO.min_size", "min_size=40", "PORTFOLIO.=40", "PORTFOLIO.min_size 40", "=40", ""]
)
def test_bad_set_syntax_is_a_config_error(item: str) -> None:
    message = _config_error(environ={}, overrides=[item])
    assert "SECTION.key=value" in message


def test_set_with_unknown_section_is_a_config_error() -> None:
    message = _config_error(environ={}, overrides=["PORTFOLO.min_size=40"])
    assert "[PORTFOLO]" in message
    assert "PORTFOLIO" in message


# --- precedence -------------------------------------------------------------------------------


def test_precedence_defaults_server_sidecar_environment_overrides(tmp_path: Path) -> None:
    server = _ini(tmp_path / "server.ini", "[PORTFOLIO]\nmin_size = 20\n[ZONE_SPECIFIC_OPTIMIZATION]\nenable = True\n")
    sidecar = _ini(tmp_path / "job.ini", "[portfolio]\nMIN_SIZE = 25\n[ZONE_SPECIFIC_OPTIMIZATION]\nenable = False\n")
    environ = {"HEAVYOPT_PORTFOLIO_MIN_SIZE": "30", "HEAVYOPT_ZONE_SPECIFIC_OPTIMIZATION_ENABLE": "True"}
    overrides = ["PORTFOLIO.min_size=40", "ZONE_SPECIFIC_OPTIMIZATION.enable=False"]

    def pick(config: Config) -> tuple[int, bool]:
        return config.portfolio.min_size, config.zone_specific.enable

    assert pick(load_config(environ={})) == (35, False)
    assert pick(load_config([server], environ={})) == (20, True)
    assert pick(load_config([server, sidecar], environ={})) == (25, False)
    assert pick(load_config([server, sidecar], environ=environ)) == (30, True)
    assert pick(load_config([server, sidecar], environ=environ, overrides=overrides)) == (40, False)
    # Each layer alone over the defaults.
    assert pick(load_config(environ=environ)) == (30, True)
    assert pick(load_config(environ={}, overrides=overrides)) == (40, False)


@pytest.mark.parametrize(
    ("server", "sidecar", "environ", "overrides"),
    [
        ("penalty_factor = 5", None, {}, ["OPTIMIZATION.correlation_penalty_weight=7"]),
        ("penalty_factor = 5", None, {"HEAVYOPT_OPTIMIZATION_CORRELATION_PENALTY_WEIGHT": "7"}, []),
        ("correlation_penalty_weight = 5", "penalty_factor = 7", {}, []),
        ("correlation_penalty_weight = 5", None, {}, ["OPTIMIZATION.penalty_factor=7"]),
    ],
    ids=["legacy-server-new-set", "legacy-server-new-env", "new-server-legacy-sidecar", "new-server-legacy-set"],
)
def test_penalty_weight_names_follow_precedence_across_layers(
    tmp_path: Path, server: str, sidecar: str | None, environ: dict[str, str], overrides: list[str]
) -> None:
    """One setting under two names: a higher layer wins whichever name each layer uses (brief §9)."""
    files = [_ini(tmp_path / "server.ini", f"[OPTIMIZATION]\n{server}\n")]
    if sidecar is not None:
        files.append(_ini(tmp_path / "config_zone.ini", f"[OPTIMIZATION]\n{sidecar}\n"))
    assert load_config(files, environ=environ, overrides=overrides).penalty_weight == 7.0


def test_override_beats_server_file_for_zone_weights(tmp_path: Path) -> None:
    server = _ini(tmp_path / "server.ini", "[ZONE_WEIGHTS]\nA = 1\nB = 0.5\n")
    config = load_config([server], environ={"HEAVYOPT_ZONE_WEIGHTS_B": "2"}, overrides=["ZONE_WEIGHTS.A=3"])
    assert dict(config.zone_weights) == {"A": 3.0, "B": 2.0}


def test_environment_variables_not_matching_a_section_are_ignored() -> None:
    environ = {
        "HEAVYOPT_TEST_HEAVYDB_URL": SECRET_URL,
        "HEAVYOPT_PORTFOLIOMIN_SIZE": "3",
        "HEAVYOPT": "x",
        "PORTFOLIO_MIN_SIZE": "3",
        "PATH": "/usr/bin",
    }
    assert load_config(environ=environ) == Config()


def test_load_config_does_not_read_os_environ_when_environ_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEAVYOPT_PORTFOLIO_MIN_SIZE", "30")
    assert load_config(environ={}).portfolio.min_size == 35
    assert load_config().portfolio.min_size == 30


# --- secrets and the database URL -------------------------------------------------------------


@pytest.mark.parametrize("source", ["file", "environment", "override"])
def test_database_password_never_in_repr_or_to_dict(tmp_path: Path, source: str) -> None:
    if source == "file":
        config = load_config([_ini(tmp_path / "c.ini", f"[DATABASE]\nurl = {SECRET_URL}\n")], environ={})
    elif source == "environment":
        config = load_config(environ={"HEAVYOPT_DATABASE_URL": SECRET_URL})
    else:
        config = load_config(environ={}, overrides=[f"DATABASE.url={SECRET_URL}"])
    assert config.database.url == SECRET_URL
    assert database_url(config) == SECRET_URL
    for text in (
        repr(config),
        str(config),
        repr(config.database),
        repr(config.to_dict()),
        json.dumps(config.to_dict()),
    ):
        assert "s3cret" not in text
    assert config.to_dict()["DATABASE"]["url"] == "heavydb://admin:***@host:6274/db"
    assert "host:6274/db" in repr(config.database)


def test_database_url_defaults_to_duckdb_under_xdg_data_home(tmp_path: Path) -> None:
    # conftest points XDG_DATA_HOME at tmp_path / "xdg".
    url = database_url(load_config(environ={}))
    assert url.startswith("duckdb:///")
    assert Path(url.removeprefix("duckdb:///")) == tmp_path / "xdg" / "heavyopt" / "heavyopt.duckdb"


def test_database_url_under_configured_data_dir(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides=[f"DATABASE.data_dir={tmp_path / 'data'}"])
    assert database_url(config) == f"duckdb:///{tmp_path / 'data' / 'heavyopt.duckdb'}"


def test_strat_limit_below_min_size_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match=r"GENERAL\.strat_limit = 10 .* PORTFOLIO\.min_size = 35"):
        load_config(environ={}, overrides=["GENERAL.strat_limit=10"])


# --- one section per algorithm ------------------------------------------------------------------


def test_every_algorithm_has_a_section_with_its_defaults() -> None:
    from algorithms import REGISTRY

    config = load_config(environ={})
    for flag, cls in REGISTRY.items():
        assert config.algorithm(flag) == cls()
        assert cls.section in config.to_dict()


def test_algorithm_keys_are_parsed_and_checked(tmp_path: Path) -> None:
    text = "[HILL_CLIMBING]\nneighbourhood = 250\n[particle_swarm]\ninertia = 0.5\n"
    config = load_config([_ini(tmp_path / "a.ini", text)], environ={"HEAVYOPT_ANT_COLONY_ANTS": "12"})
    assert config.algorithm("use_hill_climbing").neighbourhood == 250
    assert config.algorithm("use_particle_swarm").inertia == 0.5
    assert config.algorithm("use_ant_colony").ants == 12
    with pytest.raises(ConfigError, match=r"PARTICLE_SWARM\.inertia = '1\.5' .*between 0\.0 and 1\.0"):
        load_config(environ={}, overrides=["PARTICLE_SWARM.inertia=1.5"])
    with pytest.raises(ConfigError, match=r"ANT_COLONY\.antz .*did you mean ANT_COLONY\.ants"):
        load_config(environ={}, overrides=["ANT_COLONY.antz=3"])


def test_legacy_ga_keys_feed_the_genetic_algorithm_with_precedence(tmp_path: Path) -> None:
    legacy = _ini(
        tmp_path / "legacy.ini",
        "[PORTFOLIO]\npopulation_size = 60\nmutation_rate = 0.2\n[GENERAL]\nga_generations = 7\n",
    )
    ga = load_config([legacy], environ={}).algorithm("use_genetic_algorithm")
    assert (ga.population_size, ga.mutation_rate, ga.generations) == (60, 0.2, 7)
    # The same layer's own GA key wins over the legacy key ...
    both = _ini(tmp_path / "both.ini", "[PORTFOLIO]\nmutation_rate = 0.2\n[GENETIC_ALGORITHM]\nmutation_rate = 0.4\n")
    assert load_config([both], environ={}).algorithm("use_genetic_algorithm").mutation_rate == 0.4
    # ... and a higher layer wins whichever name it uses.
    top = load_config([both], environ={}, overrides=["PORTFOLIO.mutation_rate=0.3"])
    assert top.algorithm("use_genetic_algorithm").mutation_rate == 0.3
    assert load_config(environ={}).algorithm("use_genetic_algorithm").mutation_rate == 0.6  # unset: the GA's own
