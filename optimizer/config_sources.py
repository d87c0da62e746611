"""Where configuration values come from: INI files, ``HEAVYOPT_<SECTION>_<KEY>`` environment
variables and ``--set SECTION.key=value`` items, each read into a :data:`Layer` that remembers
where every value came from (error messages quote it). ``optimizer.config`` merges the layers."""

from __future__ import annotations

import configparser
import difflib
from collections.abc import Mapping
from pathlib import Path

from algorithms import REGISTRY
from dal.base import redact_url
from errors import ConfigError

# INI section name -> attribute of Config. ZONE_WEIGHTS has free keys (zone names).
SECTIONS: dict[str, str] = {
    "GENERAL": "general",
    "PORTFOLIO": "portfolio",
    "OPTIMIZATION": "optimization",
    "ALGORITHMS": "algorithms",
    "ZONE_SPECIFIC_OPTIMIZATION": "zone_specific",
    "ZONE_WEIGHTS": "zone_weights",
    "VALIDATION": "validation",
    "INPUT": "input",
    "DATABASE": "database",
    "COMPUTE": "compute",
    "OUTPUT": "output",
    "QUEUE": "queue",
    "API": "api",
}
# Sections a job may set (sidecar INI, job file); the rest belong to the server.
SERVER_SECTIONS = ("DATABASE", "COMPUTE", "OUTPUT", "QUEUE", "API")

Layer = dict[str, dict[str, tuple[str, str]]]  # section -> key -> (raw value, where it came from)


# One section per algorithm, named by the class (e.g. [HILL_CLIMBING]); its keys are the class's fields.
ALGORITHM_SECTIONS: dict[str, str] = {cls.section: flag for flag, cls in REGISTRY.items()}


def _canonical_section(name: str, where: str) -> str:
    upper = name.strip().upper()
    known = [*SECTIONS, *ALGORITHM_SECTIONS]
    if upper not in known:
        hint = difflib.get_close_matches(upper, known, n=1)
        extra = f" (did you mean [{hint[0]}]?)" if hint else f"; known sections: {', '.join(known)}"
        raise ConfigError(f"config error: {where}: unknown section [{name}]{extra}")
    return upper


def read_ini(path: str | Path) -> Layer:
    """Read one INI file into a layer. Keys keep their case (zone names); sections are matched case-insensitively."""
    path = Path(path)
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        with path.open(encoding="utf-8-sig") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError(f"config error: {path}: file not found") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"config error: {path}: not a valid INI file: {first}") from None
    layer: Layer = {}
    for section in parser.sections():
        canon = _canonical_section(section, str(path))
        for key, value in parser.items(section):
            layer.setdefault(canon, {})[key] = (value, str(path))
    return layer


def env_layer(environ: Mapping[str, str]) -> Layer:
    """``HEAVYOPT_<SECTION>_<KEY>`` variables; variables of other shapes are not config and are ignored."""
    layer: Layer = {}
    by_length = sorted([*SECTIONS, *ALGORITHM_SECTIONS], key=len, reverse=True)
    for var, value in environ.items():
        if not var.startswith("HEAVYOPT_"):
            continue
        rest = var[len("HEAVYOPT_") :]
        for section in by_length:
            if rest.upper().startswith(section + "_"):
                key = rest[len(section) + 1 :]
                if section != "ZONE_WEIGHTS":
                    key = key.lower()
                layer.setdefault(section, {})[key] = (value, f"environment variable {var}")
                break
    return layer


def overrides_layer(items: list[str]) -> Layer:
    """Command-line ``SECTION.key=value`` items."""
    layer: Layer = {}
    for item in items:
        name, eq, value = item.partition("=")
        section, dot, key = name.partition(".")
        if not eq or not dot or not key.strip():
            raise ConfigError(f"config error: --set {item!r}: expected SECTION.key=value, e.g. PORTFOLIO.max_size=40")
        canon = _canonical_section(section, f"--set {item!r}")
        # The value may be a URL with a password: sources are quoted in error messages.
        shown = "***" if key.strip().lower() == "token" else redact_url(value.strip())
        layer.setdefault(canon, {})[key.strip()] = (value.strip(), f"--set {name.strip()}={shown}")
    return layer
