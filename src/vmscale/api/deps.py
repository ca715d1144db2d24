"""FastAPI dependencies: the authenticated caller, and the control plane behind the app.

Auth is a dependency (not middleware) so each route declares the scope it needs right where it
is defined, and the OpenAPI schema shows the bearer scheme (which the fuzz test uses).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vmscale.api.auth import LOCAL_ACTOR, Principal, Scope, TokenStore, is_loopback
from vmscale.control import ControlPlane

bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer TOKEN`; a read token for GET, a write token for POST",
)


def control_of(request: Request) -> ControlPlane:
    control: ControlPlane = request.app.state.control
    return control


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
