"""FastAPI dependencies: the authenticated caller, and the group's control plane a route acts on.

Auth is a dependency (not middleware) so each route declares the scope it needs right where it
is defined, and the OpenAPI schema shows the bearer scheme (which the fuzz test uses).

A route finds its group by the path (``/v1/groups/{name}/...``, ``named_control``) or, on the
one-group paths of before (``/v1/group``, ``/v1/instances``...), by ``?group=`` — which may be
left out when the controller runs one group (``control_of``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vmscale.api.auth import LOCAL_ACTOR, Principal, Scope, TokenStore, is_loopback
from vmscale.control import ControlGroups, ControlPlane, UnknownGroupError

bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer TOKEN`; a read token for GET, a write token for POST",
)


GROUP_NAME_MAX = 64  # longer than any valid name (31), so a typo gets "no group", not a 422

GroupQuery = Annotated[
    str | None,
    Query(
        max_length=GROUP_NAME_MAX,
        description="the group to act on; may be left out when the controller runs one group",
    ),
]


def groups_of(request: Request) -> ControlGroups:
    groups: ControlGroups = request.app.state.groups
    return groups


def _named(groups: ControlGroups, name: str) -> ControlPlane:
    try:
        return groups.get(name)
    except UnknownGroupError as exc:
        raise HTTPException(404, str(exc)) from None


def control_of(request: Request, group: GroupQuery = None) -> ControlPlane:
    """The group of a one-group path: ``?group=``, or the only one. With several and none named,
    400 listing them (a write must never land on a group the caller did not mean)."""
    groups = groups_of(request)
    if group is not None:
        return _named(groups, group)
    only = groups.only()
    if only is None:
        raise HTTPException(
            400,
            f"this controller runs several groups ({', '.join(groups.names)}): name one with "
            "?group=NAME or use /v1/groups/NAME/... (the CLI: --group NAME or VMSCALE_GROUP)",
        )
    return only


def named_control(
    request: Request,
    name: Annotated[str, Path(max_length=GROUP_NAME_MAX, description="the group's name")],
) -> ControlPlane:
    """The group named in the path (``/v1/groups/{name}/...``); 404 listing the groups if unknown."""
    return _named(groups_of(request), name)


def _authorise(request: Request, presented: str | None, required: Scope) -> Principal:
    tokens: TokenStore = request.app.state.tokens
    if not tokens.configured:
        client = request.client.host if request.client else ""
        if not is_loopback(client):
            raise HTTPException(403, "no tokens are configured: only loopback clients are served")
        return Principal(LOCAL_ACTOR, Scope.WRITE)
    if not presented:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    who = tokens.authenticate(presented)
    if who is None:
        raise HTTPException(401, "the token is not valid", headers={"WWW-Authenticate": "Bearer"})
    if not who.allows(required):
        raise HTTPException(
            403, f"this token's scope is {who.scope.name.lower()}; {required.name.lower()} is required"
        )
    return who


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency granting access with a bearer header carrying ``scope`` (or more)."""

    def dep(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        return _authorise(request, creds.credentials if creds else None, scope)

    return dep


def require_read_sse(
    request: Request,
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    token: str | None = Query(
        None,
        max_length=512,
        description="read token, for EventSource clients that cannot set headers "
        "(it may end up in proxy logs: prefer the header)",
    ),
) -> Principal:
    """Read access by header or ``?token=``: browsers' EventSource cannot send headers."""
    return _authorise(request, creds.credentials if creds else token, Scope.READ)
