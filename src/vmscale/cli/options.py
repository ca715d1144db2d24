"""Options and help text several commands share: machine-readable output (``--json`` and
kubectl's ``-o json``) and how the environment overrides the config file."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON (for scripts); the same as -o json")]
OutputOpt = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        show_default=False,
        help="text (default) or json, as kubectl users type it: `-o json` is `--json`",
    ),
]

ENV_HELP = (
    "**Environment.** `VMSCALE_<SECTION>__<SETTING>=value` overrides a setting of the file, for "
    "containers and systemd units: `VMSCALE_GROUP__MAX=6`, `VMSCALE_API__BIND=0.0.0.0:8900`, "
    "`VMSCALE_PROVIDER__LIBVIRT__URI=qemu:///system`, `VMSCALE_POLICIES__0__TARGET=70` (a policy "
    "of the file, counted from 0). The environment wins over the file; a bad value is reported "
    "at the variable's name. Tokens: `VMSCALE_TOKENS` (see `api.token_file`)."
)


GroupOpt = Annotated[
    str | None,
    typer.Option(
        "--group",
        "-g",
        envvar="VMSCALE_GROUP",
        show_default=False,
        help="the group to act on (or set VMSCALE_GROUP); may be left out when only one group runs",
    ),
]

GROUPS_HELP = (
    "**Several groups.** A controller may run several groups (`[[groups]]` in its config): name "
    "one with `--group NAME` or `VMSCALE_GROUP=NAME`. Without it a command acts on the only group, "
    "or, when several run, `status`, `instances` and `logs` show every group and a change "
    "(`scale`, `pause`, `resume`) is refused with the list of groups."
)


def wants_json(as_json: bool, output: Output | None) -> bool:
    return as_json or output is Output.JSON
