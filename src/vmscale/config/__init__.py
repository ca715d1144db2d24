"""Load and validate the config file, once, reporting every problem with its path.

    cfg = load_config(Path("vmscale.toml"), env=os.environ)   # raises ConfigError with all problems

Three layers, each reporting everything it finds: the file (TOML), ``VMSCALE_SECTION__KEY``
environment variables on top of it (``config.env``), then validation in two passes — pydantic
for each setting and the rules inside a section, and ``config.checks`` for rules across sections,
run over every section that is valid on its own. The rest of the code receives the frozen
``VmscaleConfig`` and never re-validates; code that runs groups reads ``cfg.group_settings()``
(one group at the top level, or each ``[[groups]]`` entry: see ``config.group``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vmscale.config.env import apply_env
from vmscale.config.group import group_parts, group_problems, mixed_forms
from vmscale.config.problems import ConfigProblems, Problem
from vmscale.config.schema import VmscaleConfig
from vmscale.errors import ConfigError

__all__ = ["ConfigProblems", "Problem", "VmscaleConfig", "format_loc", "load_config", "parse_config"]


def format_loc(loc: tuple[int | str, ...]) -> str:
    """('group', 'policies', 0, 'target') -> 'group.policies[0].target'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _problems(exc: ValidationError) -> list[tuple[tuple[int | str, ...], str]]:
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
        problems.append((loc, msg))
    return problems


_UNION_TAGS = {"threshold", "target", "step", "schedule"}


def _env_var_of(loc: tuple[int | str, ...], origin: Mapping[tuple[str | int, ...], str]) -> str:
    """The variable that supplied the value at ``loc`` (or a table around it), if one did."""
    for k in range(len(loc), 0, -1):
        if loc[:k] in origin:
            return origin[loc[:k]]
    return ""


def parse_config(
    data: Mapping[str, Any], source: str = "config", *, env: Mapping[str, str] | None = None
) -> VmscaleConfig:
    """Validate ``data`` (with ``env``'s ``VMSCALE_*__*`` settings on top); every problem at once."""
    merged, origin, problems = apply_env(data, env) if env else (dict(data), {}, [])
    problems += mixed_forms(merged, origin)
    try:
        cfg: VmscaleConfig | None = VmscaleConfig.model_validate(merged)
    except ValidationError as exc:
        cfg = None
        problems += [Problem(format_loc(loc), msg, _env_var_of(loc, origin)) for loc, msg in _problems(exc)]
    api = cfg.api if cfg is not None else _valid_api(merged)
    problems += group_problems(group_parts(merged, cfg), api)
    if problems or cfg is None:
        raise ConfigProblems(problems, source)
    return cfg


def _valid_api(data: Mapping[str, Any]) -> Any:
    """The ``[api]`` section when it is valid on its own (for the port checks), else None."""
    try:
        return VmscaleConfig.model_validate({"api": data.get("api", {})}).api
    except ValidationError:
        return None


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> VmscaleConfig:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    return parse_config(data, str(path), env=env)
