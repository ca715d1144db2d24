"""Settings from the environment, for containers and systemd units: ``VMSCALE_GROUP__MAX=6``.

``VMSCALE_`` + the setting's path with ``__`` between the parts, in any case:
``VMSCALE_API__BIND=0.0.0.0:8900``, ``VMSCALE_PROVIDER__LIBVIRT__URI=qemu:///system``, and a
policy of the file by its index, ``VMSCALE_POLICIES__0__TARGET=70``. The environment wins over
the file. Values are read as the file's would be (``"6"`` for a count is 6), and a bad one is
reported at the variable's name, so the person who set it can find it.

pydantic-settings turns the variables into nested values (it knows which settings are tables);
only names with a ``__`` after the prefix are read, because ``VMSCALE_API``, ``VMSCALE_TOKEN`` and
``VMSCALE_TOKENS`` are the operator commands' own variables, not settings.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

from vmscale.config.problems import Problem
from vmscale.config.schema import VmscaleConfig

PREFIX = "VMSCALE_"
DELIMITER = "__"


def _setting_vars(env: Mapping[str, str]) -> dict[str, str]:
    """The variables that name a setting (lower-cased, as pydantic-settings matches them)."""
    return {
        name.lower(): value
        for name, value in env.items()
        if name.upper().startswith(PREFIX) and DELIMITER in name[len(PREFIX) :]
    }


def override_names(env: Mapping[str, str]) -> list[str]:
    """The names of the variables that set something, as written, sorted (for `config check`)."""
    return sorted(n for n in env if n.upper().startswith(PREFIX) and DELIMITER in n[len(PREFIX) :])


def env_values(env: Mapping[str, str]) -> tuple[dict[str, Any], list[Problem]]:
    """The settings the environment gives, nested like the file, and variables naming no section."""
    wanted = _setting_vars(env)
    problems = [
        Problem(
            name.split(DELIMITER, 1)[0][len(PREFIX) :],
            "not a section of the config (check the spelling; `vmscale config example` lists them)",
            env_var=name.upper(),
        )
        for name in wanted
        if name.split(DELIMITER, 1)[0][len(PREFIX) :] not in VmscaleConfig.model_fields
    ]
    if not wanted:
        return {}, problems
    # pydantic-settings costs ~80 ms of imports at every start: only pay it when a variable sets something.
    from pydantic_settings import BaseSettings, EnvSettingsSource

    source = EnvSettingsSource(
        cast(type[BaseSettings], VmscaleConfig),
        case_sensitive=False,
        env_prefix=PREFIX,
        env_nested_delimiter=DELIMITER,
    )
    source.env_vars = wanted  # only these: see the module docstring
    return source(), problems


def _leaves(value: Any, parts: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        return [leaf for key, sub in value.items() for leaf in _leaves(sub, (*parts, str(key)))]
    return [(parts, value)]


def _var_name(parts: tuple[str, ...], present: Mapping[str, str]) -> str:
    """The variable that set ``parts``: itself, or the one holding a JSON table it is part of."""
    for k in range(len(parts), 0, -1):
        name = (PREFIX + DELIMITER.join(parts[:k])).lower()
        if name in present:
            return name.upper()
    return (PREFIX + DELIMITER.join(parts)).upper()


def apply_env(
    data: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str | int, ...], str], list[Problem]]:
    """The file's data with the environment's values on top, which path came from which variable,
    and the variables that could not be placed (a policy index the file does not have)."""
    values, problems = env_values(env)
    present = _setting_vars(env)
    merged = copy.deepcopy(dict(data))
    origin: dict[tuple[str | int, ...], str] = {}
    for parts, value in _leaves(values):
        name = _var_name(parts, present)
        target: Any = merged
        path: list[str | int] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(target, list):
                if not part.isdigit() or int(part) >= len(target):
                    where = ".".join(map(str, path))
                    problems.append(
                        Problem(where, f"the file has {len(target)} {where}; count them from 0", env_var=name)
                    )
                    break
                key: str | int = int(part)
            elif isinstance(target, dict):
                key = part
                if not last and not isinstance(target.get(key), dict | list):
                    target[key] = {}
            else:
                problems.append(Problem(".".join(map(str, path)), "is not a table", env_var=name))
                break
            path.append(key)
            if last:
                target[key] = value
                origin[tuple(path)] = name
            else:
                target = target[key]
    return merged, origin, problems
