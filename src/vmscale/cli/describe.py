"""The config in words: what `vmscale config check` and `vmscale up` print to confirm it means what
was meant (one paragraph per group, then where the API listens and the state is kept)."""

from __future__ import annotations

from vmscale.config import VmscaleConfig
from vmscale.config.hosts import ClusterConfig
from vmscale.config.policy import SchedulePolicyConfig
from vmscale.config.schema import GroupSettings
from vmscale.policy import DEFAULT_POLICY
from vmscale.policy.schedule import entry_words


def describe(cfg: VmscaleConfig) -> str:
    """What the config will do, in words, to confirm it means what was meant: one paragraph per
    group, then where the control API listens and the state is kept."""
    groups = "\n".join(describe_group(gs, cfg.cluster) for gs in cfg.group_settings())
    several = f"{len(cfg.groups)} groups run in one controller. " if len(cfg.groups) > 1 else ""
    if cfg.cluster.hosts:
        c = cfg.cluster
        names = ", ".join(h.name for h in c.hosts)
        several += (
            f"libvirt groups are placed over {len(c.hosts)} hosts ({names}) by {c.placement.strategy}; "
            f"a host silent for {c.unreachable_after_s:g} s has its instances replaced elsewhere. "
        )
    where = f"The control API listens on {cfg.api.bind} and state is kept in {cfg.state.dir}."
    return f"{groups}\n{several}{where}"


def describe_group(cfg: GroupSettings, cluster: ClusterConfig | None = None) -> str:
    """One paragraph about one group (``cluster``: the file's hosts, which libvirt groups use)."""
    g, t = cfg.group, cfg.template
    start = g.initial_count
    if cfg.provider.kind == "process":
        p = cfg.provider.process
        what = f"`{' '.join(p.command)}`" if p.command else "vmscale's fib backend"
        where = (
            f"local processes running {what} on {p.host}, ports from {p.base_port + 1} "
            f"(CPU limit: {p.cpu_limit})"
        )
    elif cfg.provider.kind == "libvirt":
        lv = cfg.provider.libvirt
        on = f"{len(cluster.hosts)} libvirt hosts" if cluster is not None and cluster.hosts else lv.uri
        where = f"libvirt VMs on {on} (acceleration: {lv.accel})"
        if lv.boot == "disk":
            given = f" with the user-data {lv.user_data}" if lv.user_data else " (no user-data)"
            where += f" booted from the cloud image {lv.cloud_image}{given}"
    else:
        where = "the in-memory fake provider (nothing real is started)"
    if cfg.policies:
        pols = "; ".join(_policy_words(p) for p in cfg.policies)
        policies = (
            f"It scales by {len(cfg.policies)} polic{'y' if len(cfg.policies) == 1 else 'ies'}: {pols}."
        )
    else:
        policies = (
            "No [[policies]] are configured, so the default runs: "
            f"{_policy_words(DEFAULT_POLICY)} (the Kubernetes HPA defaults)."
        )
    lb = (
        f"HAProxy balances requests on {cfg.lb.haproxy.bind}"
        if cfg.lb.kind == "haproxy"
        else "there is no load balancer (clients follow the event stream)"
    )
    warm = (
        f" A warm pool keeps {cfg.warm_pool.size} instance(s) {cfg.warm_pool.kind}."
        if cfg.warm_pool.size
        else ""
    )
    return (
        f"Group '{g.name}' runs {g.min} to {g.max} instance(s), starting with {start}, as {where}; "
        f"each has {t.vcpus} vCPU(s) and {t.memory_mb} MiB.{_sizing_words(cfg)} "
        f"The controller looks every {g.interval_s:g} s. "
        f"{policies} An instance is ready when {cfg.health.path} answers within {cfg.health.timeout_s:g} s; "
        f"scale-in drains for up to {cfg.drain.timeout_s:g} s.{warm} {lb[0].upper() + lb[1:]}."
    ) + _integration_words(cfg)


def _sizing_words(cfg: GroupSettings) -> str:
    """Vertical-first: how far an instance grows in place (empty for horizontal scaling)."""
    if cfg.scaling.mode != "vertical-first":
        return ""
    t = cfg.template
    memory = f", its memory with them up to {t.memory_ceiling} MiB by balloon" if t.has_memory_room else ""
    return (
        f" Vertical first: a ready instance grows in place up to {t.vcpu_ceiling} vCPUs{memory} before "
        f"instances are added, and shrinks back to {t.vcpus} before they are removed."
    )


def _integration_words(cfg: GroupSettings) -> str:
    """External metrics, hooks and notifications, when configured (empty otherwise)."""
    parts = [
        f"'{m.name}' is read from Prometheus at {m.url}" + (" per instance" if m.instance_label else "")
        for m in cfg.metrics.sources
    ]
    for phase, hooks in (("launch", cfg.hooks.launch), ("terminate", cfg.hooks.terminate)):
        if hooks:
            parts.append(f"{phase} hooks run: {', '.join(h.name for h in hooks)}")
    n = cfg.notify
    if n.webhooks:
        parts.append(f"decisions are POSTed to {', '.join(w.url for w in n.webhooks)}")
    if n.file_sd.path:
        parts.append(f"the instances are listed for Prometheus in {n.file_sd.path}")
    if n.original_client.enabled:
        oc = n.original_client
        parts.append(f"the original client is told on {oc.host}:{oc.launching_port} and :{oc.launched_port}")
    text = "; ".join(parts)
    return f" {text[0].upper()}{text[1:]}." if text else ""


def _policy_words(p: object) -> str:
    kind = getattr(p, "kind", "?")
    name = getattr(p, "name", kind)
    metric = getattr(getattr(p, "metric", None), "value", getattr(p, "metric", "?"))
    if kind == "target":
        return f"'{name}' holds {metric} near {getattr(p, 'target', '?'):g}"
    if kind == "threshold":
        lower = getattr(p, "lower", None)
        down = f", in below {lower}" if lower is not None else ""
        return f"'{name}' steps up when {metric} is above {getattr(p, 'upper', '?')}{down}"
    if isinstance(p, SchedulePolicyConfig):
        windows = ", ".join(f"{e.min} from {entry_words(e)}" for e in p.entries)
        return f"'{name}' keeps at least {windows}"
    return f"'{name}' ({kind} on {metric})"
