"""The host routes of the control API: list the group's libvirt hosts, cordon, uncordon, drain.

    GET  /v1/hosts                       state, free memory and vCPUs (as libvirt reports them), the
                                         group's instances on each, the wish, a drain's progress
    POST /v1/hosts/{name}/cordon         nothing new is placed on it
    POST /v1/hosts/{name}/uncordon       placement may use it again (a drain in progress stops)
    POST /v1/hosts/{name}/drain          cordon, and move its instances off by live migration

A drain answers at once; its progress is in ``GET /v1/hosts`` and the event stream (``host`` and
``migration`` events). A group without hosts (the process provider, one libvirt host) lists none
and refuses the writes with 409; an unknown host name is 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam

from vmscale.api.deps import control_of
from vmscale.api.jsonsafe import SafeJSONResponse
from vmscale.api.routes import Reader, Writer
from vmscale.control import ControlPlane

# The hosts are seen through one group's controller (its placement, its instances on each): with
# several groups, ``?group=NAME`` names it, as on the one-group paths.
Control = Annotated[ControlPlane, Depends(control_of)]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "several groups run here and none was named (?group=)"},
    401: {"description": "missing or invalid token"},
    403: {"description": "the token's scope is not enough"},
    404: {"description": "no host of that name"},
    409: {"description": "the group's provider has no hosts"},
    429: {"description": "rate limit exceeded (see Retry-After)"},
}

HostName = Annotated[
    str, PathParam(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="the host's name in [[cluster.hosts]]")
]

router = APIRouter(default_response_class=SafeJSONResponse)


@router.get(
    "/v1/hosts",
    summary="the group's hosts: state, free memory and vCPUs, its instances there, drains",
    responses={k: v for k, v in ERRORS.items() if k in (400, 401, 403, 429)},
)
def get_hosts(control: Control, _: Reader) -> list[dict[str, Any]]:
    return [h.to_dict() for h in control.hosts()]


def _act(control: ControlPlane, name: str, action: str, actor: str) -> dict[str, Any]:
    try:
        return control.host_action(name, action, actor).to_dict()
    except LookupError as exc:
        raise HTTPException(404, str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/v1/hosts/{name}/cordon", summary="place nothing new on the host", responses=ERRORS)
def cordon(name: HostName, control: Control, who: Writer) -> dict[str, Any]:
    return _act(control, name, "cordon", who.actor)


@router.post(
    "/v1/hosts/{name}/uncordon", summary="let placement use the host again (stops a drain)", responses=ERRORS
)
def uncordon(name: HostName, control: Control, who: Writer) -> dict[str, Any]:
    return _act(control, name, "uncordon", who.actor)


@router.post(
    "/v1/hosts/{name}/drain",
    summary="cordon the host and move the group's instances off it by live migration, one at a time",
    responses=ERRORS,
)
def drain(name: HostName, control: Control, who: Writer) -> dict[str, Any]:
    return _act(control, name, "drain", who.actor)
