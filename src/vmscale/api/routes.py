"""The REST routes of the control API (``/v1/...``, ``/metrics``, ``/healthz``).

Each route is a thin translation between HTTP and the ``ControlPlane`` protocol: validate the
input (pydantic, bounded), call the control plane, and turn its ``ValueError`` into a 409
that tells the user what to change. A write that reaches a standby is a 409 too, whose body names
the leader (``app.py`` handles ``NotLeaderError``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from vmscale.api import sse
from vmscale.api.auth import Principal, Scope
from vmscale.api.deps import control_of, require, require_read_sse
from vmscale.api.jsonsafe import SafeJSONResponse
from vmscale.control import ControlPlane

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Control = Annotated[ControlPlane, Depends(control_of)]
Reader = Annotated[Principal, Depends(require(Scope.READ))]
Writer = Annotated[Principal, Depends(require(Scope.WRITE))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token"},
    403: {"description": "the token's scope is not enough"},
    429: {"description": "rate limit exceeded (see Retry-After)"},
}


class DesiredBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    desired: int = Field(
        ..., ge=0, le=1000, description="instances wanted; must lie within the group's [min, max]"
    )


router = APIRouter(default_response_class=SafeJSONResponse, responses=_ERRORS)


@router.get("/healthz", summary="liveness of the control API", responses={})
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/group", summary="desired/actual counts, bounds, policies, last decision")
def get_group(control: Control, _: Reader) -> dict[str, Any]:
    return control.group().to_dict()


@router.get("/v1/instances", summary="every instance the group knows, with state and CPU")
def get_instances(control: Control, _: Reader) -> list[dict[str, Any]]:
    return [i.to_dict() for i in control.instances()]


_STANDBY: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "outside the group's [min, max], or this controller is a standby "
        "(the body's `leader` names the leader's id and address)"
    }
}


@router.get("/v1/controllers", summary="every controller of the scope, and which one leads")
def get_controllers(control: Control, _: Reader) -> dict[str, Any]:
    return control.leadership(full=True).to_dict()


@router.post("/v1/group/desired", summary="manual override of the desired count", responses=_STANDBY)
def set_desired(body: DesiredBody, control: Control, who: Writer) -> dict[str, Any]:
    try:
        return control.set_desired(body.desired, actor=who.actor).to_dict()
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post(
    "/v1/group/pause",
    summary="stop automatic scaling decisions (health replacement goes on)",
    responses=_STANDBY,
)
def pause(control: Control, who: Writer) -> dict[str, Any]:
    return control.set_paused(True, actor=who.actor).to_dict()


@router.post("/v1/group/resume", summary="resume automatic scaling decisions", responses=_STANDBY)
def resume(control: Control, who: Writer) -> dict[str, Any]:
    return control.set_paused(False, actor=who.actor).to_dict()


@router.get("/v1/decisions", summary="most recent decisions, newest last")
def get_decisions(
    control: Control, _: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[dict[str, Any]]:
    return control.decisions(limit=limit)


@router.get("/v1/history", summary="tick records since a time (epoch seconds), oldest first")
def get_history(
    control: Control, _: Reader, since: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None
) -> list[dict[str, Any]]:
    return control.history(since=since)


@router.get(
    "/v1/events",
    summary="Server-Sent Events: first the ready endpoints, then every event (resumable with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def events(
    request: Request,
    control: Control,
    _: Annotated[Principal, Depends(require_read_sse)],
    types: Annotated[
        str | None, Query(max_length=512, description="comma-separated event types, e.g. endpoints,decision")
    ] = None,
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="resume after this event: the missed ones are replayed, or a 'reset' event says "
            "they are gone (EventSource sends it by itself when it reconnects)",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=64, description="the same as the Last-Event-ID header, for clients without headers"),
    ] = None,
) -> StreamingResponse:
    wanted = frozenset(t.strip() for t in types.split(",") if t.strip()) if types else None
    body = sse.stream(
        request.app.state.hub,
        control.endpoints,
        wanted or None,
        request.app.state.sse_ping_s,
        history=control.events,
        last_event_id=sse.parse_last_event_id(last_event_id_header or last_event_id),
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format 0.0.4)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 404: {"description": "metrics not enabled"}},
)
def metrics(request: Request, _: Reader) -> Response:
    m = request.app.state.metrics
    if m is None:
        raise HTTPException(404, "metrics are not enabled on this controller")
    return Response(m.render(), media_type=PROMETHEUS_CONTENT_TYPE)
