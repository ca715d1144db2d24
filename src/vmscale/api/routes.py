"""The REST routes of the control API (``/v1/...``, ``/metrics``, ``/healthz``).

Each route is a thin translation between HTTP and the ``ControlPlane`` protocol: validate the
input (pydantic, bounded), call the control plane, and turn its ``ValueError`` into a 409
that tells the user what to change.

Every group's routes exist twice, from one set of handlers (``group_routes``): under
``/v1/groups/{name}/...`` for any group, and at the one-group paths of before (``/v1/group``,
``/v1/instances``, ``/v1/group/desired``...), which take ``?group=`` and may leave it out when the
controller runs one group. ``GET /v1/groups`` lists every group; ``GET /v1/events`` without a group
streams them all. A write that reaches a standby is a 409 too, whose body names the leader
(``app.py`` handles ``NotLeaderError``); ``GET /v1/controllers`` lists every controller.
"""

# No ``from __future__ import annotations`` here: the group routes are defined inside a function,
# and FastAPI must evaluate their annotations (which name that function's locals) at definition.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from vmscale.api import sse
from vmscale.api.auth import Principal, Scope
from vmscale.api.deps import GroupQuery, control_of, groups_of, named_control, require, require_read_sse
from vmscale.api.jsonsafe import SafeJSONResponse
from vmscale.control import ControlGroups, ControlPlane

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Groups = Annotated[ControlGroups, Depends(groups_of)]
Reader = Annotated[Principal, Depends(require(Scope.READ))]
Writer = Annotated[Principal, Depends(require(Scope.WRITE))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "several groups run here and none was named (?group=)"},
    401: {"description": "missing or invalid token"},
    403: {"description": "the token's scope is not enough"},
    404: {"description": "no such group (the answer names the groups there are)"},
    429: {"description": "rate limit exceeded (see Retry-After)"},
}


_STANDBY: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "outside the group's [min, max], or this controller is a standby "
        "(the body's `leader` names the leader's id and address)"
    }
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


@router.get("/v1/groups", summary="every group's desired/actual counts, bounds, policies, last decision")
def get_groups(groups: Groups, _: Reader) -> list[dict[str, Any]]:
    return [control.group().to_dict() for control in groups]


@router.get("/v1/controllers", summary="every controller of the scope, and which one leads")
def get_controllers(groups: Groups, _: Reader) -> dict[str, Any]:
    return groups.leadership(full=True).to_dict()


@dataclass(frozen=True, slots=True)
class GroupPaths:
    """Where one group's routes live, and how they find the group."""

    resolve: Callable[..., ControlPlane]
    group: str
    instances: str
    endpoints: str
    desired: str
    pause: str
    resume: str
    decisions: str
    history: str
    tag: str


ONE_GROUP = GroupPaths(
    control_of,
    group="/v1/group",
    instances="/v1/instances",
    endpoints="/v1/endpoints",
    desired="/v1/group/desired",
    pause="/v1/group/pause",
    resume="/v1/group/resume",
    decisions="/v1/decisions",
    history="/v1/history",
    tag="one group (?group= with several)",
)
BY_NAME = GroupPaths(
    named_control,
    group="/v1/groups/{name}",
    instances="/v1/groups/{name}/instances",
    endpoints="/v1/groups/{name}/endpoints",
    desired="/v1/groups/{name}/desired",
    pause="/v1/groups/{name}/pause",
    resume="/v1/groups/{name}/resume",
    decisions="/v1/groups/{name}/decisions",
    history="/v1/groups/{name}/history",
    tag="groups",
)


def group_routes(paths: GroupPaths) -> APIRouter:
    """The routes of one group, at ``paths`` (the same handlers serve both sets of paths)."""
    Control = Annotated[ControlPlane, Depends(paths.resolve)]
    routes = APIRouter(default_response_class=SafeJSONResponse, responses=_ERRORS, tags=[paths.tag])

    @routes.get(paths.group, summary="desired/actual counts, bounds, policies, last decision")
    def get_group(control: Control, _: Reader) -> dict[str, Any]:
        return control.group().to_dict()

    @routes.get(paths.instances, summary="every instance the group knows, with state and CPU")
    def get_instances(control: Control, _: Reader) -> list[dict[str, Any]]:
        return [i.to_dict() for i in control.instances()]

    @routes.get(paths.endpoints, summary="the ready endpoints, in rotation")
    def get_endpoints(control: Control, _: Reader) -> list[dict[str, str]]:
        return control.endpoints()

    @routes.post(
        paths.desired,
        summary="manual override of the desired count",
        responses=_STANDBY,
    )
    def set_desired(body: DesiredBody, control: Control, who: Writer) -> dict[str, Any]:
        try:
            return control.set_desired(body.desired, actor=who.actor).to_dict()
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None

    @routes.post(
        paths.pause,
        summary="stop automatic scaling decisions (health replacement goes on)",
        responses=_STANDBY,
    )
    def pause(control: Control, who: Writer) -> dict[str, Any]:
        return control.set_paused(True, actor=who.actor).to_dict()

    @routes.post(paths.resume, summary="resume automatic scaling decisions", responses=_STANDBY)
    def resume(control: Control, who: Writer) -> dict[str, Any]:
        return control.set_paused(False, actor=who.actor).to_dict()

    @routes.get(paths.decisions, summary="most recent decisions, newest last")
    def get_decisions(
        control: Control, _: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> list[dict[str, Any]]:
        return control.decisions(limit=limit)

    @routes.get(paths.history, summary="tick records since a time (epoch seconds), oldest first")
    def get_history(
        control: Control,
        _: Reader,
        since: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    ) -> list[dict[str, Any]]:
        return control.history(since=since)

    return routes


TypesQuery = Annotated[
    str | None, Query(max_length=512, description="comma-separated event types, e.g. endpoints,decision")
]
LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=64,
        description="resume after this event: the missed ones are replayed, or a 'reset' event says "
        "they are gone (EventSource sends it by itself when it reconnects)",
    ),
]
LastEventIdQuery = Annotated[
    str | None,
    Query(max_length=64, description="the same as the Last-Event-ID header, for clients without headers"),
]
SseReader = Annotated[Principal, Depends(require_read_sse)]
EVENTS_DOC = {
    "response_class": StreamingResponse,
    "responses": {200: {"content": {"text/event-stream": {}}}},
}


def _events(
    request: Request,
    groups: ControlGroups,
    group: str | None,
    types: str | None,
    last_event_id: str | None,
) -> StreamingResponse:
    """The SSE stream of one group (``group``) or of every group (None)."""
    planes = [named_control(request, group)] if group is not None else list(groups)

    def endpoints() -> list[tuple[str, list[dict[str, str]]]]:
        return [(plane.group().name, plane.endpoints()) for plane in planes]

    wanted = frozenset(t.strip() for t in types.split(",") if t.strip()) if types else None
    body = sse.stream(
        request.app.state.hub,
        endpoints,
        wanted or None,
        request.app.state.sse_ping_s,
        history=groups.events,
        last_event_id=sse.parse_last_event_id(last_event_id),
        group=group,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get(
    "/v1/events",
    summary="Server-Sent Events: first the ready endpoints, then every event (resumable with Last-Event-ID); "
    "every group's unless ?group= names one",
    **EVENTS_DOC,  # type: ignore[arg-type]
)
def events(
    request: Request,
    groups: Groups,
    _: SseReader,
    group: GroupQuery = None,
    types: TypesQuery = None,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> StreamingResponse:
    return _events(request, groups, group, types, last_event_id_header or last_event_id)


@router.get(
    "/v1/groups/{name}/events",
    summary="Server-Sent Events of one group (as /v1/events?group=NAME)",
    **EVENTS_DOC,  # type: ignore[arg-type]
)
def group_events(
    request: Request,
    groups: Groups,
    _: SseReader,
    name: Annotated[str, Path(max_length=64, description="the group's name")],
    types: TypesQuery = None,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> StreamingResponse:
    return _events(request, groups, name, types, last_event_id_header or last_event_id)


router.include_router(group_routes(BY_NAME))
router.include_router(group_routes(ONE_GROUP))


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
