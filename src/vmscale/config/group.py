"""Several groups in one file: the two forms of a config, and the rules *between* groups.

A file is either one group at its top level (``[group]``, ``[provider]``, ... as before ``[[groups]]``
existed) or several, each a ``[[groups]]`` entry holding the same sections under the same names::

    [api]                       # process-wide: api, state, event_log, simulate
    bind = "127.0.0.1:8900"

    [[groups]]
    group = { name = "web", max = 4 }
    provider = { kind = "process", process = { base_port = 18100 } }

    [[groups]]
    group = { name = "batch", max = 8 }
    provider = { kind = "process", process = { base_port = 18200 } }

Both at once is a mistake (which group would ``[provider]`` belong to?), reported at each
top-level section with the fix. Rules inside one group run per group (``config.checks``, each
problem at ``groups[1]...``); the rules here compare groups with each other and with the control
API: unique names, listening ports that would collide at run time (instance port blocks, HAProxy
fronts and stats pages, the API), and one file_sd file per group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vmscale.config.checks import PROCESS_WIDE, Validated, cross_checks, validated_parts
from vmscale.config.problems import Problem
from vmscale.config.schema import GROUP_SECTIONS, ApiConfig, GroupSettings

WILDCARDS = frozenset({"", "*", "0.0.0.0", "::"})


def mixed_forms(data: Mapping[str, Any], origin: Mapping[tuple[str | int, ...], str]) -> list[Problem]:
    """A group's section at the top level of a file that has ``[[groups]]``: one problem per section,
    naming the environment variable when one put it there (``VMSCALE_GROUP__MAX``)."""
    if "groups" not in data:
        return []
    problems = []
    for name in GROUP_SECTIONS:
        if name not in data:
            continue
        var = next((v for path, v in origin.items() if path[:1] == (name,)), "")
        if var:
            why = (
                "this file has [[groups]], so a group's setting needs the group's index: "
                f"VMSCALE_GROUPS__<N>__{name.upper()}__... (N counted from 0)"
            )
        else:
            why = (
                f"[{name}] is one group's section and this file has [[groups]]: move it into each "
                f"[[groups]] entry (groups[0].{name}, ...), or remove [[groups]] to run the top level "
                "as the one group"
            )
        problems.append(Problem(name, why, var))
    return problems


def group_parts(data: Mapping[str, Any], cfg: Any) -> list[tuple[str, Validated]]:
    """Each group's path prefix and its sections that are valid on their own.

    ``cfg`` is the loaded ``VmscaleConfig`` when the whole file was valid (then every section is),
    else ``None`` and the raw ``data`` is validated section by section."""
    if cfg is not None:
        if cfg.groups:
            wide = {name: getattr(cfg, name) for name in PROCESS_WIDE}
            return [
                (f"groups[{i}].", Validated.of(gs).with_sections(wide)) for i, gs in enumerate(cfg.groups)
            ]
        return [("", Validated.of(cfg))]
    from vmscale.config.schema import VmscaleConfig

    whole = validated_parts(data, VmscaleConfig)
    raw = data.get("groups")
    if isinstance(raw, list):
        wide = {name: whole.sections[name] for name in PROCESS_WIDE if name in data and whole.has(name)}
        return [
            (f"groups[{i}].", validated_parts(item, GroupSettings).with_sections(wide))
            for i, item in enumerate(raw)
            if isinstance(item, Mapping)
        ]
    return [("", whole)]


def group_problems(parts: Sequence[tuple[str, Validated]], api: ApiConfig | None) -> list[Problem]:
    """Every rule inside each group, then the rules between groups."""
    inside = [p for where, v in parts for p in cross_checks(v, where)]
    return inside + unique_names(parts) + port_collisions(parts, api) + shared_files(parts)


def unique_names(parts: Sequence[tuple[str, Validated]]) -> list[Problem]:
    first: dict[str, str] = {}
    problems = []
    for where, v in parts:
        if not v.has("group"):
            continue
        name = v.sections["group"].name
        if name in first:
            problems.append(
                Problem(
                    f"{where}group.name",
                    f"{name!r} is already the name of {first[name]}; give each group its own name "
                    "(instances, API paths and metrics are named after it)",
                )
            )
        first.setdefault(name, where.rstrip("."))
    return problems


@dataclass(frozen=True, slots=True)
class Listener:
    """Ports something listens on at run time, and the setting that chose them."""

    path: str
    what: str
    host: str
    low: int
    high: int

    def overlaps(self, other: Listener) -> bool:
        same_host = self.host == other.host or self.host in WILDCARDS or other.host in WILDCARDS
        return same_host and self.low <= other.high and other.low <= self.high

    def ports(self) -> str:
        return f"{self.host}:{self.low}" + (f"-{self.high}" if self.high != self.low else "")


def _bind(path: str, what: str, value: str) -> Listener | None:
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or int(port) == 0:
        return None  # port 0: any free port, never a collision
    return Listener(path, what, host, int(port), int(port))


def listeners(where: str, v: Validated) -> Iterable[Listener]:
    """What one group listens on: its instances' port block (``base_port`` + 1 .. + max + warm pool,
    the indices its instances normally take) and its HAProxy front and stats page."""
    if v.has("provider", "group", "warm_pool"):
        provider, span = v.sections["provider"], v.sections["group"].max + v.sections["warm_pool"].size
        if provider.kind == "process":
            base, host = provider.process.base_port, provider.process.host
            path = f"{where}provider.process.base_port"
            yield Listener(path, "instance ports", host, base + 1, base + span)
        elif provider.kind == "libvirt" and provider.libvirt.network == "user":
            base = provider.libvirt.base_port
            yield Listener(
                f"{where}provider.libvirt.base_port", "VM port forwards", "127.0.0.1", base + 1, base + span
            )
    if v.has("lb") and v.sections["lb"].kind == "haproxy":
        haproxy = v.sections["lb"].haproxy
        for field, what in (("bind", "HAProxy front"), ("stats_bind", "HAProxy stats page")):
            found = _bind(f"{where}lb.haproxy.{field}", what, getattr(haproxy, field))
            if found is not None:
                yield found


def port_collisions(parts: Sequence[tuple[str, Validated]], api: ApiConfig | None) -> list[Problem]:
    """Two groups (or a group and the API) that would listen on the same port: the second to start
    would fail, or worse, one group's instance would answer for another's. Reported at the later
    setting, naming the earlier one."""
    owned: list[tuple[str, Listener]] = []
    if api is not None:
        found = _bind("api.bind", "control API", api.bind)
        if found is not None:
            owned.append(("api", found))
    for where, v in parts:
        owned += [(where, item) for item in listeners(where, v)]
    problems = []
    for k, (owner, item) in enumerate(owned):
        clash = next((o for w, o in owned[:k] if w != owner and o.overlaps(item)), None)
        if clash is not None:
            problems.append(
                Problem(
                    item.path,
                    f"{item.what} ({item.ports()}) would clash with the {clash.what} "
                    f"({clash.ports()}, {clash.path}); give each group ports of its own",
                )
            )
    return problems


def shared_files(parts: Sequence[tuple[str, Validated]]) -> list[Problem]:
    """Two groups writing one file_sd file would overwrite each other's targets."""
    first: dict[str, str] = {}
    problems = []
    for where, v in parts:
        path = v.sections["notify"].file_sd.path if v.has("notify") else ""
        if not path:
            continue
        if path in first:
            problems.append(
                Problem(
                    f"{where}notify.file_sd.path",
                    f"{path!r} is also {first[path]}: each group needs its own file "
                    "(Prometheus reads several: file_sd_configs: [{files: [A, B]}])",
                )
            )
        first.setdefault(path, f"{where}notify.file_sd.path")
    return problems
