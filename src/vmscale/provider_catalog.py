"""What each provider kind can do, declared once, readable without importing the provider.

``vmscale config check`` asks this catalog (not a table in the schema) whether the configured
provider can keep a warm pool of the chosen kind, and start-up asks it which pip extra a provider
needs when its foreign library is missing. The provider classes take their own declarations from
here too, so the two never disagree. Deliberately light: standard library only, no ``libvirt``
import, so the config layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One provider kind's declared abilities."""

    kind: str
    warm_kinds: tuple[str, ...]  # how a warm-pool instance may wait: "paused", "saved"
    resize: bool  # can change a running instance's vCPUs (the Resizer role)
    extra: str = ""  # the pip extra that installs its foreign library ('' = none needed)
    module: str = ""  # that library's import name, to recognise it in an ImportError
    build_needs: str = ""  # system package that building the library needs
    warm_note: str = ""  # why the warm kinds are what they are, for error messages

    def install_hint(self) -> str:
        """The one command that makes this provider usable, for a missing-library error."""
        if not self.extra:
            return ""
        build = f" (and {self.build_needs} to build it)" if self.build_needs else ""
        return f"the {self.kind} provider needs `pip install 'vmscale[{self.extra}]'`{build}"


# ``resize`` says which kinds play the ``Resizer`` role (``providers/base.py``); a unit test holds each
# provider class to it. ``vmscale config check`` refuses vertical-first scaling without it.
CATALOG: dict[str, Capabilities] = {
    "process": Capabilities(
        kind="process",
        warm_kinds=("paused",),
        resize=True,
        warm_note="a process can only be paused with SIGSTOP: it has no state saved on disk",
    ),
    "libvirt": Capabilities(
        kind="libvirt",
        warm_kinds=("paused", "saved"),
        resize=True,
        extra="libvirt",
        module="libvirt",
        build_needs="libvirt-dev",
        warm_note="a VM can be paused, its memory held, or saved, its memory on disk",
    ),
    "fake": Capabilities(kind="fake", warm_kinds=("paused", "saved"), resize=True),
}


def capabilities(kind: str) -> Capabilities:
    """The declared abilities of provider ``kind``; ``KeyError`` names the known kinds."""
    try:
        return CATALOG[kind]
    except KeyError:
        raise KeyError(f"unknown provider kind {kind!r}; known: {', '.join(sorted(CATALOG))}") from None
