"""Run the demo: start a group, calibrate the load to the machine, play low -> high -> idle,
show it live, stop cleanly, and write the report."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live

from vmscale.demo.display import DemoDisplay
from vmscale.demo.plan import DemoPlan, demo_config, plan_for
from vmscale.errors import VmscaleError
from vmscale.ports import free_block
from vmscale.report import write_report
from vmscale.service import Service, build_provider
from vmscale.workload.discovery import EndpointSource, EventStreamEndpoints, StaticEndpoints
from vmscale.workload.load import LoadOptions, calibrate_n, run_phases


class DemoError(VmscaleError):
    pass


def _clean_previous(cfg: Any, state_dir: Path) -> None:
    """A previous demo that was killed may have left instances: remove them, start afresh."""
    if state_dir.exists():
        provider = build_provider(cfg, state_dir)
        for inst in provider.list(cfg.group.name):
            provider.terminate(inst.name, graceful_timeout_s=5)
        provider.close()
        shutil.rmtree(state_dir, ignore_errors=True)


def _ensure_image(console: Console) -> None:
    """The libvirt demo boots VMs from the guest image: build it first if needed (cached after)."""
    from vmscale.providers.libvirt.image import DEFAULT_IMAGE_DIR, build_image

    with console.status("checking the guest image (built once, a few minutes, then cached) ..."):
        manifest, built = build_image(DEFAULT_IMAGE_DIR)
    console.print(f"guest image {manifest.hash} {'built' if built else 'reused'} in {DEFAULT_IMAGE_DIR}")


def _free_base_port(count: int, start: int = 18100) -> int:
    """A base port whose next ``count`` ports are free on loopback (another program may hold 18101)."""
    base = free_block(count, start, step=100)
    if base is None:
        raise DemoError("no free block of loopback ports found for the demo's instances")
    return base


def _wait_ready(svc: Service, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if svc.controller.group().ready >= count:
            return
        time.sleep(0.1)
    raise DemoError(f"no instance became ready within {timeout_s:.0f} s; see {svc.state_dir} for logs")


def _calibrate(url: str, plan: DemoPlan, max_n: int) -> tuple[int, float, int]:
    """Heavy n, one instance's capacity in requests/s, and its worker count."""
    with httpx.Client(timeout=30, trust_env=False) as client:
        workers = int(client.get(url + "/healthz").json().get("workers", 1))

        def once(n: int) -> float:
            t0 = time.perf_counter()
            client.get(f"{url}/fib/{n}").raise_for_status()
            return time.perf_counter() - t0

        async def timed(u: str, n: int, reps: int = 3) -> float:
            return statistics.median(once(n) for _ in range(reps))

        n = asyncio.run(calibrate_n(timed, url, plan.request_s, max_n))
        per_request = statistics.median(once(n) for _ in range(5))
    return n, workers / per_request, workers


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    provider: str = "process",
    lb: str = "none",
    api_port: int = 8900,
    keep: bool = False,
    console: Console | None = None,
    lb_bind: str = "127.0.0.1:8080",
    lb_stats_bind: str = "127.0.0.1:8404",
) -> dict[str, Any]:
    """Run the demo into ``out``. ``lb_bind`` is HAProxy's front address (the only one clients use
    with ``lb="haproxy"``) and ``lb_stats_bind`` its stats page; tests pass free ports."""
    console = console or Console()
    plan = plan_for(provider, quick)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("client.jsonl", "autoscaler.jsonl", "decisions.jsonl", "summary.json", "report.html"):
        (out / name).unlink(missing_ok=True)
    state_dir = (out / "state").resolve()
    cfg = demo_config(
        plan,
        state_dir,
        provider=provider,
        lb=lb,
        api_bind=f"127.0.0.1:{api_port}",
        lb_bind=lb_bind,
        lb_stats_bind=lb_stats_bind,
    )
    if provider == "libvirt":
        _ensure_image(console)
    _clean_previous(cfg, state_dir)
    if provider == "process":
        cfg = demo_config(
            plan,
            state_dir,
            provider=provider,
            lb=lb,
            api_bind=f"127.0.0.1:{api_port}",
            base_port=_free_base_port(cfg.group.max + cfg.warm_pool.size),
            lb_bind=lb_bind,
            lb_stats_bind=lb_stats_bind,
        )
    svc = Service(cfg, log_path=out / "autoscaler.jsonl")
    display = DemoDisplay(svc.controller, plan.total_s)
    svc.events.add_listener(display.on_event)
    console.print(
        f"[bold]vmscale demo[/] — provider [cyan]{provider}[/], balancer [cyan]{lb}[/], "
        f"{'quick' if quick else 'full'} scenario ({plan.total_s:.0f} s of load), output in {out}"
    )
    svc.start()
    console.print(f"control API and live dashboard: [link]{svc.api_url}/[/link]")
    try:
        with Live(display.render(), console=console, refresh_per_second=4, transient=False) as live:
            display.set_phase("waiting for the first instance", 0)
            _wait_ready(svc, 1, cfg.health.boot_timeout_s + 10)
            first = svc.controller.endpoints()[0]["url"]
            display.set_phase("calibrating the load to this machine", 0)
            live.update(display.render())
            # Calibration is load too: keep the autoscaler from reacting to it.
            svc.controller.set_paused(True, "demo-calibration")
            n, capacity, workers = _calibrate(first, plan, cfg.workload.fib.max_n)
            # Let a few samples without the calibration's load pass first, so the first decision
            # after resuming sees the calm machine, not the tail of the calibration.
            time.sleep(3 * cfg.group.interval_s)
            svc.controller.set_paused(False, "demo-calibration")
            display.lines.append(
                f"calibrated: fib({n}) ≈ {workers / capacity:.2f} s per request; one instance serves "
                f"≈ {capacity:.1f} req/s; high phase sends {plan.overload * capacity:.1f} req/s"
            )
            source: EndpointSource
            if lb == "haproxy" and svc.lb.frontend_url():
                source = StaticEndpoints([str(svc.lb.frontend_url())])
            else:
                assert svc.api_url is not None
                source = EventStreamEndpoints(svc.api_url)
            phases = plan.phases(n, capacity)
            result: dict[str, Any] = {}

            def load() -> None:
                try:
                    result["summary"] = asyncio.run(
                        run_phases(
                            phases,
                            source,
                            out / "client.jsonl",
                            on_record=display.on_record,
                            options=LoadOptions(
                                pick="p2c", timeout_s=60, keepalive=cfg.provider.kind != "libvirt"
                            ),
                        )
                    )
                except BaseException as exc:  # reported below, on the main thread
                    result["error"] = exc

            t0 = time.monotonic()
            worker = threading.Thread(target=load, name="vmscale-demo-load")
            worker.start()
            bounds = [("low", plan.low_s), ("high", plan.low_s + plan.high_s), ("idle", plan.total_s)]
            while worker.is_alive():
                el = time.monotonic() - t0
                display.set_phase(next((p for p, end in bounds if el < end), "idle"), min(el, plan.total_s))
                live.update(display.render())
                worker.join(0.25)
            if "error" in result:
                raise DemoError(f"the load client failed: {result['error']}")
            # Give scale-in a little longer if the idle phase was not enough on a slow machine.
            deadline = time.monotonic() + plan.idle_s
            while time.monotonic() < deadline and svc.controller.group().actual > cfg.group.min:
                display.set_phase("idle (waiting for scale-in)", plan.total_s)
                live.update(display.render())
                time.sleep(0.25)
            live.update(display.render())
    finally:
        svc.stop(terminate=not keep)
    summary = write_report(out)
    return summary
