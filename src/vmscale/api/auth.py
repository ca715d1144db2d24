"""Who may steer the autoscaler: bearer tokens with a read or write scope.

Tokens come from a file (``SCOPE TOKEN [NAME]`` per line, ``#`` comments) or the environment
variable ``VMSCALE_TOKENS="read:TOKEN,write:TOKEN"`` — never from the command line, where any
user on the host can read them in the process list. A token is never logged or echoed: callers
are identified by an *actor* string (the token's name, or its scope plus a short hash prefix),
which is what lands in the decision log.

With no tokens configured the API is open, but only when bound to loopback; everyone is then
the actor ``local``. :func:`check_bind_allowed` refuses anything else at start-up.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vmscale.config.address import split_host_port
from vmscale.errors import AuthError, ConfigError

ENV_VAR = "VMSCALE_TOKENS"
MIN_TOKEN_CHARS = 8
LOCAL_ACTOR = "local"


class Scope(enum.IntEnum):
    """Ordered so that ``granted >= required`` is the check: write implies read."""

    READ = 1
    WRITE = 2

    @classmethod
    def parse(cls, text: str) -> Scope:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown scope {text.strip()!r}: use 'read' or 'write'") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: what it may do and how the decision log names it."""

    actor: str
    scope: Scope

    def allows(self, required: Scope) -> bool:
        return self.scope >= required


@dataclass(frozen=True, slots=True)
class _Token:
    scope: Scope
    secret: bytes
    actor: str

    def __repr__(self) -> str:  # never show the secret, even in a traceback or debugger
        return f"_Token(scope={self.scope.name}, actor={self.actor!r})"


def _actor_for(scope: Scope, secret: str, name: str | None) -> str:
    if name:
        return name
    digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
    return f"{scope.name.lower()}-{digest}"


class TokenStore:
    """The configured tokens. Empty means "no auth, loopback only"."""

    def __init__(self, entries: Iterable[tuple[Scope, str, str | None]] = ()) -> None:
        self._tokens: list[_Token] = []
        for scope, secret, name in entries:
            if len(secret) < MIN_TOKEN_CHARS:
                raise ConfigError(
                    [f"a {scope.name.lower()} token is shorter than {MIN_TOKEN_CHARS} characters"]
                )
            self._tokens.append(_Token(scope, secret.encode(), _actor_for(scope, secret, name)))

    @classmethod
    def load(cls, token_file: str, env: Mapping[str, str] = os.environ) -> TokenStore:
        """Tokens from ``token_file`` (if set) plus ``$VMSCALE_TOKENS``; every problem at once."""
        entries: list[tuple[Scope, str, str | None]] = []
        problems: list[str] = []
        if token_file:
            path = Path(token_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError([f"api.token_file: cannot read {token_file}: {exc.strerror}"]) from exc
            for lineno, raw in enumerate(text.splitlines(), 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) not in (2, 3):
                    problems.append(f"{token_file}:{lineno}: expected 'SCOPE TOKEN [NAME]'")
                    continue
                try:
                    entries.append((Scope.parse(parts[0]), parts[1], parts[2] if len(parts) == 3 else None))
                except ValueError as exc:
                    problems.append(f"{token_file}:{lineno}: {exc}")
        for i, item in enumerate(filter(None, (s.strip() for s in env.get(ENV_VAR, "").split(",")))):
            scope_text, sep, secret = item.partition(":")
            if not sep or not secret:
                problems.append(f"${ENV_VAR} item {i + 1}: expected 'SCOPE:TOKEN'")
                continue
            try:
                entries.append((Scope.parse(scope_text), secret, None))
            except ValueError as exc:
                problems.append(f"${ENV_VAR} item {i + 1}: {exc}")
        if problems:
            raise ConfigError(problems, source="tokens")
        return cls(entries)

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, presented: str) -> Principal | None:
        """The principal for ``presented``, comparing against every token in constant time."""
        candidate = presented.encode()
        found: _Token | None = None
        for tok in self._tokens:  # no early exit: the time taken does not say which token matched
            if hmac.compare_digest(candidate, tok.secret) and found is None:
                found = tok
        return Principal(found.actor, found.scope) if found else None


def split_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) into its parts, with a message a person can act on."""
    try:
        return split_host_port(bind, port_zero_ok=True)
    except ValueError as exc:
        raise ValueError(f"bind {bind!r}: {exc}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_allowed(bind: str, tokens: TokenStore) -> None:
    """Refuse to serve an unauthenticated API anywhere but loopback."""
    host, _ = split_bind(bind)
    if not tokens.configured and not is_loopback(host):
        raise AuthError(
            f"binding to {host} requires a token: set api.token_file or ${ENV_VAR}, or bind to 127.0.0.1"
        )
