"""Checks of what a ``boot = "disk"`` group hands a VM: its qcow2 cloud image and its cloud-init
user-data. Used by the config schema (so ``config check`` finds them) and by the seed ISO maker
(so a file edited after the check is still refused before a VM boots with it).

User-data formats cloud-init accepts, and what is checked of each:

* ``#cloud-config`` — YAML, which must parse and be a mapping (a typo in indentation is the
  commonest reason a VM boots and silently does nothing);
* ``#!`` — a script cloud-init runs once; ``#include`` and MIME multipart (``Content-Type``) —
  passed on as they are.

Anything else cloud-init would ignore, so it is an error.
"""

from __future__ import annotations

from pathlib import Path

QCOW2_MAGIC = b"QFI\xfb"
USER_DATA_STARTS = ("#cloud-config", "#!", "#include", "Content-Type")


def user_data_problem(text: str) -> str:
    """'' when cloud-init can use ``text`` as user-data, else what is wrong (one line)."""
    if not text.startswith(USER_DATA_STARTS):
        first = text.splitlines()[0][:40] if text.strip() else "(empty)"
        return (
            f"user-data must start with '#cloud-config' (YAML), '#!' (a script), '#include' or be MIME "
            f"multipart; it starts with {first!r}"
        )
    if not text.startswith("#cloud-config"):
        return ""
    import yaml  # only for a #cloud-config file: not every start pays for it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"#cloud-config is not valid YAML{where}: {problem}"
    if data is not None and not isinstance(data, dict):
        return f"#cloud-config must be a YAML mapping (key: value), not a {type(data).__name__}"
    return ""


def user_data_file_problem(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
    problem = user_data_problem(text)
    return f"{path}: {problem}" if problem else ""


def qcow2_problem(path: str) -> str:
    """'' when ``path`` is a readable qcow2 image, else what is wrong (one line)."""
    file = Path(path)
    if not file.exists():
        return f"{path} does not exist (build one with `vmscale image build --kind cloud`, or give yours)"
    if not file.is_file():
        return f"{path} is not a file"
    try:
        with open(file, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if magic != QCOW2_MAGIC:
        return f"{path} is not a qcow2 image (convert it: qemu-img convert -O qcow2 {path} image.qcow2)"
    return ""
