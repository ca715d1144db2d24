"""CLI: ``vmscale backend`` (the fib service) and ``vmscale load`` (the load client)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import typer

from vmscale.cli.api_client import read_token
from vmscale.cli.options import Output, wants_json

LOAD_HELP = """Send load to fib backends and summarise the response times.

**Modes** (`--mode`, or several back to back with `--phases low:10,high:30,idle:20`):

* **low**: a few light requests, open loop at `--rate` (default 2/s), n random in 15..25.
* **high**: repeated groups of `--concurrency` concurrent requests for fib(n); the next group
starts when the previous one is answered. Sized to overload exactly ONE instance: the group size
defaults to 2 x the `workers` the first endpoint reports on /healthz, so one instance has twice
the work it can run at once (requests queue, latency grows) while two instances are merely busy.
n is `--n`, or with `--calibrate` it is measured: n is chosen so one request takes about
`--calibrate-target` seconds (default 0.25) on the idle target, so "high" means the same on a
laptop and on a small VM. Without either, n = 30.
* **step**: open loop at a constant `--rate` req/s.
* **ramp**: open loop, rate rising linearly from `--rate-start` to `--rate` over `--duration`.
* **trace**: open loop following `--trace` CSV with columns t,rate (seconds, req/s).
* **idle**: send nothing for `--duration`.

Open-loop modes send at the planned times whatever the latency (no coordinated omission); a
planned request that would exceed `--max-outstanding` in flight is logged as error "dropped".

**Examples**

```
vmscale load --mode low --url http://127.0.0.1:8000 --duration 10
vmscale load --mode high --url http://127.0.0.1:8000 --calibrate --duration 20 --log client.jsonl
vmscale load --api http://127.0.0.1:8900 --phases low:10,high:60,idle:30 --pick p2c -o json
VMSCALE_TOKEN=$(cat read.token) vmscale load --api http://10.0.0.5:8900 --mode low
vmscale load --api http://10.0.0.5:8900 --token-file /etc/vmscale/read.token --mode high --calibrate
vmscale load --mode step --rate 40 --url http://127.0.0.1:8000 --url http://127.0.0.1:8001
vmscale load --mode trace --trace rates.csv --duration 300 --api http://127.0.0.1:8900
```

Every request is written to `--log` as JSONL (t_send, latency_s, status, error, endpoint, server,
n, phase). Absurd parameters (rate > 5000/s, duration > 24 h, concurrency > 1000, n > 45,
negative values) are refused with exit code 2; an unreachable control API exits with 3.
"""


def backend(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind (0..65535)."),
    name: str = typer.Option("web", help="Server name reported in every response."),
    workers: int | None = typer.Option(
        None, help="fib worker processes (default: CPUs this process may use)."
    ),
    fib_max_n: int = typer.Option(
        35, "--fib-max-n", help="Largest n served; above it: 422 (fib is exponential)."
    ),
    workers_file: Path | None = typer.Option(
        None, "--workers-file", help="On SIGHUP, take the worker count from this file (resizing)."
    ),
) -> None:
    """Run the fib backend: GET / · /{n} · /fib/{n} · /healthz (JSON). Stops cleanly on SIGTERM.

    **Examples**

    ```
    vmscale backend --port 8000 --name web-1      # then: curl localhost:8000/30
    vmscale backend --port 8001 --workers 2 --fib-max-n 32
    ```
    """
    from vmscale.workload.backend import serve, validate

    problems = validate(port, workers, fib_max_n)
    if problems:
        typer.echo("error: " + "; ".join(problems), err=True)
        raise typer.Exit(2)
    serve(host, port, name, workers, fib_max_n, workers_file=workers_file)


def load(
    mode: str = typer.Option("low", help="low | high | step | ramp | trace | idle (see above)."),
    url: list[str] = typer.Option([], "--url", help="Backend base URL (repeat for several)."),
    api: str | None = typer.Option(None, help="Control API URL: follow its endpoint list (SSE)."),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        dir_okay=False,
        help="File holding the token for --api; without it the token is read from $VMSCALE_TOKEN "
        "(never from the command line, where `ps` shows it).",
    ),
    duration: float = typer.Option(20.0, help="Seconds per phase."),
    phases: str | None = typer.Option(
        None, help="Phases back to back: mode:seconds[@rate],... e.g. low:10,high:30."
    ),
    rate: float | None = typer.Option(None, help="Requests/s for low, step, ramp (end rate)."),
    rate_start: float = typer.Option(0.0, help="Ramp start rate (req/s)."),
    n: int | None = typer.Option(
        None, help="fib n for high/step/ramp/trace (default: high 30, others 15..25; low is always 15..25)."
    ),
    calibrate: bool = typer.Option(False, help="Measure the target and pick n (see --calibrate-target)."),
    calibrate_target: float = typer.Option(0.25, help="Seconds one calibrated request should take."),
    concurrency: int | None = typer.Option(None, help="Group size for high (default 2 x workers)."),
    trace: Path | None = typer.Option(None, help="CSV t,rate for --mode trace."),
    arrival: str = typer.Option("uniform", help="Open-loop arrivals: uniform | poisson."),
    pick: str = typer.Option("random", help="Endpoint choice: random | p2c (power of two choices)."),
    max_outstanding: int = typer.Option(1000, help="Cap on requests in flight; beyond it: dropped."),
    timeout: float = typer.Option(60.0, help="Per-request timeout in seconds."),
    keepalive: bool = typer.Option(
        True,
        help="Reuse connections. --no-keepalive opens one per request, for backends whose keep-alive "
        "timer can cut a slow request (the guest image's uvicorn 0.17 under overload).",
    ),
    seed: int | None = typer.Option(None, help="Random seed (endpoint choice, n, arrivals)."),
    log: Path | None = typer.Option(None, "--log", help="Write every request to this JSONL file."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (= -o json)."),
    output: Output | None = typer.Option(None, "--output", "-o", help="text or json (kubectl style)."),
) -> None:
    from vmscale.workload.discovery import (
        DiscoveryError,
        EndpointSource,
        EventStreamEndpoints,
        StaticEndpoints,
    )
    from vmscale.workload.load import LoadOptions, run_phases
    from vmscale.workload.load_plan import LoadParameterError, Phase, parse_phases, read_trace
    from vmscale.workload.load_report import print_summary
    from vmscale.workload.load_stats import Summary

    try:
        if bool(url) == bool(api):
            raise LoadParameterError(["give either --url (one or more) or --api, not both or neither"])
        base = Phase(
            mode=mode,
            duration_s=duration,
            rate=rate,
            rate_start=rate_start,
            n=n,
            concurrency=concurrency,
            trace=read_trace(trace) if trace is not None else (),
            calibrate_s=calibrate_target if calibrate else None,
            arrival=arrival,
        )
        plan = parse_phases(phases, base) if phases else [base]
        options = LoadOptions(
            pick=pick, timeout_s=timeout, max_outstanding=max_outstanding, seed=seed, keepalive=keepalive
        )
    except LoadParameterError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    token = read_token(token_file) if api else None
    source: EndpointSource = EventStreamEndpoints(api, token) if api else StaticEndpoints(url)

    async def main() -> Summary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_phases(plan, source, log, stop, options=options)

    try:
        summary = asyncio.run(main())
    except LoadParameterError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except DiscoveryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    if wants_json(as_json, output):
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        print_summary(summary)


def register(app: typer.Typer) -> None:
    app.command("backend")(backend)
    app.command("load", help=LOAD_HELP)(load)
