"""A config problem with its exact place: the setting's path, and the environment variable that
supplied the value when it came from one (``VMSCALE_GROUP__MAX (group.max): ...``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmscale.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Problem:
    path: str  # 'group.max', 'policies[0].target', '(top level)'
    message: str
    env_var: str = ""  # 'VMSCALE_GROUP__MAX' when the value came from the environment

    def where(self) -> str:
        return f"{self.env_var} ({self.path})" if self.env_var else self.path

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "env_var": self.env_var}


class ConfigProblems(ConfigError):
    """Every problem of one config, located; ``problems`` keeps the one-line strings as before."""

    def __init__(self, located: Sequence[Problem], source: str = "config") -> None:
        self.located = tuple(located)
        super().__init__([str(p) for p in self.located], source)
