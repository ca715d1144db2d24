"""The second pass of config validation: rules that read more than one section of a group.

Pydantic checks each setting and, with field validators, the rules inside one section (they read
the fields before them from ``info.data``, so they run even when a sibling is wrong). A rule across
sections cannot live there: a model validator of the whole file runs only when *every* field is
valid, so a file with three mistakes took three runs. Here each rule runs over the parts of the
file that are valid on their own (:func:`validated_parts`) and is skipped only when a part it
reads is itself wrong (that part's own problem is reported instead).

Capabilities come from the provider catalog, not from a table here: the check asks the provider.
The rules read one group's sections; with ``[[groups]]`` they run once per group, each problem at
its group's path (``groups[1].warm_pool.kind``). Rules *between* groups are in ``config.group``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vmscale.config.metrics import unknown_metric
from vmscale.config.policy import PolicyConfig
from vmscale.config.problems import Problem
from vmscale.config.schema import GroupSettings
from vmscale.provider_catalog import CATALOG, capabilities

# Policy metrics that only a load balancer measures (HAProxy's response times). ``rps`` comes from it
# too today, but other sources for it are being added (issue 14), so it is not refused here.
BALANCER_METRICS = ("latency_p95",)


@dataclass(frozen=True, slots=True)
class Validated:
    """The sections that validated, by name, and the policies that did, with their index."""

    sections: Mapping[str, Any]
    policies: Sequence[tuple[int, PolicyConfig]]

    def has(self, *names: str) -> bool:
        return all(name in self.sections for name in names)

    def with_sections(self, more: Mapping[str, Any]) -> Validated:
        """These sections and ``more`` (the whole file's, which every group reads)."""
        return Validated({**self.sections, **more}, self.policies)

    @classmethod
    def of(cls, cfg: GroupSettings) -> Validated:
        """The sections of one group's settings (all valid: the config loaded)."""
        sections = {name: getattr(cfg, name) for name in type(cfg).model_fields}
        return cls(sections, list(enumerate(cfg.policies)))


def validated_parts(data: Mapping[str, Any], model: type[GroupSettings] = GroupSettings) -> Validated:
    """Validate each section of ``data`` (a group's table, or the whole file with ``model`` =
    ``VmscaleConfig``), and each policy, on its own; keep the ones that pass."""
    defaults = model()
    sections: dict[str, Any] = {}
    for name in model.model_fields:
        if name not in data:
            sections[name] = getattr(defaults, name)
            continue
        with contextlib.suppress(ValidationError):
            sections[name] = getattr(model.model_validate({name: data[name]}), name)
    policies: list[tuple[int, PolicyConfig]] = []
    raw = data.get("policies")
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            with contextlib.suppress(ValidationError):
                policies.append((i, GroupSettings.model_validate({"policies": [item]}).policies[0]))
    return Validated(sections, policies)


def unique_policy_names(v: Validated) -> Iterable[Problem]:
    first: dict[str, int] = {}
    for i, policy in v.policies:
        if policy.name in first:
            yield Problem(
                f"policies[{i}].name",
                f"{policy.name!r} is already the name of policies[{first[policy.name]}]; "
                "give each policy its own name (decisions and metrics are labelled with it)",
            )
        first.setdefault(policy.name, i)


def warm_pool_kind(v: Validated) -> Iterable[Problem]:
    if not v.has("provider", "warm_pool"):
        return
    pool, kind = v.sections["warm_pool"], v.sections["provider"].kind
    caps = capabilities(kind)
    if pool.size and pool.kind not in caps.warm_kinds:
        able = sorted(k for k, c in CATALOG.items() if pool.kind in c.warm_kinds and k != "fake")
        yield Problem(
            "warm_pool.kind",
            f"the {kind} provider cannot keep warm instances {pool.kind!r} ({caps.warm_note}); "
            f"use kind = {caps.warm_kinds[0]!r}, or provider.kind = {' or '.join(map(repr, able))}",
        )


def balancer_metrics(v: Validated) -> Iterable[Problem]:
    if not v.has("lb") or v.sections["lb"].kind != "none":
        return
    for i, policy in v.policies:
        metric = getattr(policy, "metric", None)
        if metric in BALANCER_METRICS:
            yield Problem(
                f"policies[{i}].metric",
                f"{metric} is measured by the load balancer and lb.kind = 'none', so this policy "
                "would never get a value; set lb.kind = 'haproxy', or use metric = 'cpu'",
            )


def metric_references(v: Validated) -> Iterable[Problem]:
    """Every policy's metric is built in or defined under [metrics]."""
    if not v.has("metrics"):
        return
    for i, policy in v.policies:
        metric = getattr(policy, "metric", None)
        why = unknown_metric(str(metric), v.sections["metrics"]) if metric is not None else ""
        if why:
            yield Problem(f"policies[{i}].metric", why)


def vertical_room(v: Validated) -> Iterable[Problem]:
    """Vertical-first scaling needs instances that can grow, and a provider that can grow them."""
    if not v.has("scaling", "template") or v.sections["scaling"].mode != "vertical-first":
        return
    template = v.sections["template"]
    if template.vcpu_ceiling <= template.vcpus:
        yield Problem(
            "template.max_vcpus",
            "scaling.mode = 'vertical-first' needs room to grow: set template.max_vcpus above "
            f"template.vcpus ({template.vcpus})",
        )
    if not v.has("provider"):
        return
    kind = v.sections["provider"].kind
    if not capabilities(kind).resize:
        able = sorted(k for k, c in CATALOG.items() if c.resize and k != "fake")
        yield Problem(
            "scaling.mode",
            f"the {kind} provider cannot resize a running instance, which vertical-first scaling does; "
            f"use mode = 'horizontal', or provider.kind = {' or '.join(map(repr, able))}",
        )


def memory_room(v: Validated) -> Iterable[Problem]:
    """Memory grows with vCPUs, by a libvirt balloon, under vertical-first scaling only."""
    if not v.has("scaling", "template", "provider"):
        return
    template, kind = v.sections["template"], v.sections["provider"].kind
    if not template.has_memory_room:
        return
    if v.sections["scaling"].mode != "vertical-first":
        yield Problem(
            "template.max_memory_mb",
            "memory grows with the vCPUs, which only scaling.mode = 'vertical-first' changes; "
            "set that mode, or remove template.max_memory_mb",
        )
    elif kind != "libvirt":
        yield Problem(
            "template.max_memory_mb",
            f"the {kind} provider does not size memory (its instances get CPU quotas, not memory "
            "limits); remove template.max_memory_mb, or use provider.kind = 'libvirt'",
        )


def clones_on_one_host(v: Validated) -> Iterable[Problem]:
    """A golden snapshot lives on one host's disk: clones are not placed on other hosts (yet)."""
    if not v.has("provider", "cluster") or v.sections["provider"].kind != "libvirt":
        return
    if v.sections["provider"].libvirt.launch == "clone" and v.sections["cluster"].hosts:
        yield Problem(
            "provider.libvirt.launch",
            'launch = "clone" is not available with [[cluster.hosts]] yet (the golden snapshot '
            'lives on one host); use launch = "boot", or one host',
        )


def consolidation_needs_hosts(v: Validated) -> Iterable[Problem]:
    if not v.has("provider", "cluster"):
        return
    cluster, kind = v.sections["cluster"], v.sections["provider"].kind
    if cluster.consolidation.enabled and (kind != "libvirt" or len(cluster.hosts) < 2):
        where = f"the {kind} provider" if kind != "libvirt" else f"{len(cluster.hosts)} [[cluster.hosts]]"
        yield Problem(
            "cluster.consolidation.enabled",
            f"consolidation moves instances between libvirt hosts and this group has {where}: "
            "list two or more [[cluster.hosts]] with provider.kind = 'libvirt', or set enabled = false",
        )


RULES: tuple[Callable[[Validated], Iterable[Problem]], ...] = (
    unique_policy_names,
    warm_pool_kind,
    balancer_metrics,
    metric_references,
    vertical_room,
    memory_room,
    clones_on_one_host,
    consolidation_needs_hosts,
)


# Sections of the whole file that a group's rules read too (one ``[cluster]`` for every group).
PROCESS_WIDE = ("cluster",)


def cross_checks(v: Validated, where: str = "") -> list[Problem]:
    """Every rule over one group's sections; ``where`` (``groups[1].``) goes before each path that
    is the group's (a process-wide section's path stays as it is)."""
    return [
        Problem(
            problem.path if problem.path.split(".")[0] in PROCESS_WIDE else where + problem.path,
            problem.message,
            problem.env_var,
        )
        for rule in RULES
        for problem in rule(v)
    ]
