"""Load and validate the config file, once, reporting every problem with its path.

    cfg = load_config(Path("vmscale.toml"))     # raises ConfigError with all problems

The rest of the code receives the frozen ``VmscaleConfig`` and never re-validates.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vmscale.config.schema import VmscaleConfig
from vmscale.errors import ConfigError

__all__ = ["VmscaleConfig", "format_loc", "load_config", "parse_config"]


def format_loc(loc: tuple[int | str, ...]) -> str:
    """('group', 'policies', 0, 'target') -> 'group.policies[0].target'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        # Discriminated unions add the tag ('target') to the location; it says nothing to a user.
        raw = err["loc"]
        loc = tuple(
            p for i, p in enumerate(raw) if not (i and isinstance(raw[i - 1], int) and p in _UNION_TAGS)
        )
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling; `vmscale config example` lists them all)"
        problems.append(f"{format_loc(loc)}: {msg}")
    return problems


_UNION_TAGS = {"threshold", "target", "step", "schedule"}


def parse_config(data: Mapping[str, Any], source: str = "config") -> VmscaleConfig:
    try:
        return VmscaleConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_problems(exc), source) from None


def load_config(path: Path) -> VmscaleConfig:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    return parse_config(data, str(path))
