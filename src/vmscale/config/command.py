"""Command templates: the argv (and environment) a process instance runs, with per-instance values.

A template is a list of arguments in Python's ``str.format`` syntax restricted to a few names::

    command = ["/srv/app/bin/server", "--listen", "{host}:{port}", "--id", "{name}"]

``{port}``, ``{name}``, ``{index}``, ``{vcpus}`` and ``{host}`` are replaced per instance (format
specs such as ``{index:02d}`` work, ``{{`` and ``}}`` are literal braces). Nothing else is allowed:
no positional ``{}``, no attribute or item access, no conversions. That keeps a template a plain
list of words with holes in it, and lets ``config check`` find a misspelt placeholder before
anything is started, instead of the first launch failing with a KeyError.

The program (the first word) must be a fixed path or name, so that it can be found and checked
for execute permission at check time; with no slash it is looked up on ``PATH`` (the template's
own ``PATH`` when its environment sets one), a relative path with a slash is relative to ``cwd``.
"""

from __future__ import annotations

import os
import re
import shutil
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

PLACEHOLDERS: tuple[str, ...] = ("port", "name", "index", "vcpus", "host")
# Values used to try a template out at check time (a format spec that cannot format them is wrong).
SAMPLE_VALUES: Mapping[str, object] = {
    "port": 18101,
    "name": "web-1",
    "index": 1,
    "vcpus": 1,
    "host": "127.0.0.1",
}
# Every process of an instance carries MARKER_ENV=<group>/<name> in its environment (see proctree).
MARKER_ENV = "VMSCALE_INSTANCE"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMATTER = string.Formatter()


def placeholder_problem(text: str) -> str:
    """'' when ``text`` is a valid template word, else what is wrong with it (one line)."""
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in _FORMATTER.parse(text) if name is not None]
    except ValueError as exc:  # a lone '{' or '}'
        return f"{text!r}: {exc} (write {{{{ or }}}} for a literal brace)"
    for name, spec, conv in fields:
        if name not in PLACEHOLDERS:
            shown = "{" + name + "}" if name else "{}"
            return f"{text!r}: unknown placeholder {shown}; use one of {allowed}"
        if conv:
            return f"{text!r}: conversions like !{conv} are not supported in {{{name}}}"
        if spec and ("{" in spec or "}" in spec):
            return f"{text!r}: nested placeholders are not supported in {{{name}}}"
    try:
        text.format(**SAMPLE_VALUES)
    except (ValueError, TypeError) as exc:
        return f"{text!r}: {exc}"
    return ""


def has_placeholders(text: str) -> bool:
    try:
        return any(name is not None for _, name, _, _ in _FORMATTER.parse(text))
    except ValueError:
        return False


def program_problem(program: str, env: Mapping[str, str], cwd: str) -> str:
    """'' when ``program`` can be executed, else why not and how to fix it (one line)."""
    if not program:
        return "the program (first word) is empty"
    if has_placeholders(program):
        return f"the program {program!r} must be a fixed path or name, not a placeholder"
    if "/" in program:
        path = Path(program)
        if not path.is_absolute():
            path = Path(cwd or os.getcwd()) / path
        if not path.exists():
            return f"program {program!r} not found (looked at {path})"
        if path.is_dir() or not os.access(path, os.X_OK):
            return f"program {path} is not executable (chmod +x it, or name the interpreter first)"
        return ""
    search = env.get("PATH", os.environ.get("PATH", os.defpath))
    if shutil.which(program, path=search) is None:
        return f"program {program!r} not found on PATH; give its full path (or set PATH in env)"
    return ""


def cwd_problem(cwd: str) -> str:
    if cwd and not Path(cwd).is_dir():
        return f"{cwd!r} does not exist or is not a folder"
    return ""


def env_problems(env: Mapping[str, str]) -> list[str]:
    problems = []
    for key, value in env.items():
        if not ENV_NAME.match(key):
            problems.append(f"{key!r} is not a valid variable name (letters, digits, '_')")
        elif key == MARKER_ENV:
            problems.append(f"{key} is set by vmscale itself (it marks the instance's processes)")
        problem = placeholder_problem(value)
        if problem:
            problems.append(f"{key}: {problem}")
    return problems


def command_problems(command: Sequence[str], env: Mapping[str, str] | None, cwd: str | None) -> list[str]:
    """Everything wrong with a command template. ``env``/``cwd`` are None when they are wrong
    themselves (reported at their own path): the program is then judged without them."""
    problems = [f"[{i}] {p}" for i, word in enumerate(command) if (p := placeholder_problem(word))]
    if not command:
        return problems
    relative = "/" in command[0] and not command[0].startswith("/")
    if cwd is not None or not relative:  # a path relative to an unusable cwd cannot be judged
        problem = program_problem(command[0], env or {}, cwd or "")
        if problem:
            problems.append(problem)
    return problems


def expand(words: Sequence[str], values: Mapping[str, object]) -> list[str]:
    """The template with this instance's values filled in (the template was checked already)."""
    return [word.format(**values) for word in words]
