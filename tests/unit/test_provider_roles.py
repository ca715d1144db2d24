"""Which provider plays which role is declared once, in the provider catalog; the classes are held
to it here, so `vmscale config check` (which reads the catalog) and the controller (which sorts a
provider into its roles) never disagree."""

from __future__ import annotations

import pytest

from vmscale.provider_catalog import CATALOG
from vmscale.providers.base import Cloner, ProviderRoles, Resizer
from vmscale.providers.fake import FakeProvider
from vmscale.providers.libvirt.provider import LibvirtProvider
from vmscale.providers.process import ProcessProvider

CLASSES = {"process": ProcessProvider, "libvirt": LibvirtProvider, "fake": FakeProvider}


@pytest.mark.parametrize("kind", sorted(CATALOG))
def test_a_provider_resizes_exactly_when_the_catalog_says_so(kind: str) -> None:
    cls = CLASSES[kind]
    plays = all(hasattr(cls, member) for member in ("resize", "can_shrink"))
    assert plays == CATALOG[kind].resize, f"{cls.__name__} and the catalog disagree on resize"
    assert cls.kind == kind


def test_the_roles_of_a_provider_are_found_once_at_start() -> None:
    roles = ProviderRoles.of(FakeProvider())
    assert isinstance(roles.resizer, Resizer) and isinstance(roles.cloner, Cloner)
    assert roles.warm_pool is roles.resizer is roles.cloner is roles.lifecycle


def test_a_provider_without_the_optional_roles_has_none() -> None:
    class Minimal:
        kind = "minimal"

        def launch(self, spec: object) -> object: ...
        def terminate(self, name: str, *, graceful_timeout_s: float = 10.0) -> None: ...
        def list(self, group: str) -> list[object]: ...
        def close(self) -> None: ...
        def sample(self, names: object) -> dict[str, float]: ...

    roles = ProviderRoles.of(Minimal())  # type: ignore[arg-type]
    assert (roles.warm_pool, roles.resizer, roles.cloner) == (None, None, None)


def test_only_the_libvirt_provider_makes_goldens_ahead() -> None:
    assert issubclass(LibvirtProvider, Cloner) and not issubclass(ProcessProvider, Cloner)
