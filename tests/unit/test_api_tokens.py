"""Tokens from a file or the environment, never shown; the loopback-only rule without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmscale.api.auth import Scope, TokenStore, check_bind_allowed, split_bind
from vmscale.errors import AuthError, ConfigError

R, W = "r" * 20, "w" * 20


def test_loads_scopes_names_and_comments_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text(f"# ops tokens\nread {R}\n\nwrite {W} alice  # on call\n")
    store = TokenStore.load(str(f), env={})
    assert len(store) == 2
    reader, writer = store.authenticate(R), store.authenticate(W)
    assert reader is not None and reader.scope is Scope.READ and reader.actor.startswith("read-")
    assert writer is not None and writer.scope is Scope.WRITE and writer.actor == "alice"
    assert store.authenticate("r" * 19) is None
    assert store.authenticate("") is None


def test_loads_from_the_environment_too(tmp_path: Path) -> None:
    store = TokenStore.load("", env={"VMSCALE_TOKENS": f"read:{R}, write:{W}"})
    who = store.authenticate(W)
    assert who is not None and who.allows(Scope.READ) and who.allows(Scope.WRITE)
    reader = store.authenticate(R)
    assert reader is not None and not reader.allows(Scope.WRITE)


def test_no_source_means_no_tokens() -> None:
    assert not TokenStore.load("", env={}).configured


def test_every_problem_is_reported_at_once_without_the_secret(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text(f"admin {R}\nread\nread {W} a b\n")
    with pytest.raises(ConfigError) as exc:
        TokenStore.load(str(f), env={"VMSCALE_TOKENS": f"{W},root:{R}"})
    msg = str(exc.value)
    assert len(exc.value.problems) == 5
    assert f"{f}:1: unknown scope 'admin'" in msg and f"{f}:2:" in msg and f"{f}:3:" in msg
    assert R not in msg and W not in msg


def test_missing_file_and_short_tokens_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        TokenStore.load(str(tmp_path / "absent"), env={})
    with pytest.raises(ConfigError, match="shorter than"):
        TokenStore.load("", env={"VMSCALE_TOKENS": "read:short"})


def test_repr_never_shows_a_secret() -> None:
    store = TokenStore([(Scope.WRITE, W, None)])
    assert W not in repr(store._tokens) and W not in repr(store.authenticate(W))


@pytest.mark.parametrize(
    ("bind", "with_tokens", "allowed"),
    [
        ("127.0.0.1:8900", False, True),
        ("127.0.0.2:8900", False, True),
        ("localhost:8900", False, True),
        ("[::1]:8900", False, True),
        ("0.0.0.0:8900", False, False),
        ("[::]:8900", False, False),
        ("192.0.2.1:8900", False, False),
        ("myhost:8900", False, False),
        ("0.0.0.0:8900", True, True),
    ],
)
def test_binding_beyond_loopback_needs_a_token(bind: str, with_tokens: bool, allowed: bool) -> None:
    tokens = TokenStore([(Scope.READ, R, None)] if with_tokens else [])
    if allowed:
        check_bind_allowed(bind, tokens)
    else:
        with pytest.raises(AuthError, match="requires a token"):
            check_bind_allowed(bind, tokens)


def test_create_app_refuses_an_open_bind() -> None:
    from tests.fakes_control import FakeControlPlane
    from vmscale.api.app import create_app
    from vmscale.config.schema import ApiConfig

    with pytest.raises(AuthError, match=r"binding to 0\.0\.0\.0 requires a token"):
        create_app(
            FakeControlPlane(), metrics=None, api_config=ApiConfig(bind="0.0.0.0:8900"), tokens=TokenStore()
        )


@pytest.mark.parametrize("bind", ["8900", ":8900", "host:port", "host:70000"])
def test_bad_bind_is_explained(bind: str) -> None:
    with pytest.raises(ValueError, match="bind"):
        split_bind(bind)
