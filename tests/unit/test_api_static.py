"""The page's files come from the package, gzip-compressed when the client accepts it, with an
ETag; the vendored browser libraries are exactly the pinned npm releases, with their licences."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fakes_control import make_api

VENDOR = Path(__file__).resolve().parents[2] / "src" / "vmscale" / "api" / "static" / "vendor"
BUNDLE = "/static/vendor/swagger-ui/swagger-ui-bundle.js"


@pytest.fixture()
def client() -> TestClient:
    app, _ = make_api()
    return TestClient(app)


def test_text_assets_are_served_gzip_compressed(client: TestClient) -> None:
    plain = client.get(BUNDLE, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    packed = client.get(BUNDLE, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    raw = client.stream("GET", BUNDLE, headers={"Accept-Encoding": "gzip"})
    with raw as resp:
        wire = b"".join(resp.iter_raw())
    assert gzip.decompress(wire) == plain.content
    assert len(wire) < len(plain.content) / 3, (
        "Swagger UI's 1.7 MB bundle should travel in well under a third"
    )


def test_refused_gzip_is_honoured(client: TestClient) -> None:
    resp = client.get("/static/app.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in resp.headers


def test_an_unchanged_file_costs_a_304(client: TestClient) -> None:
    first = client.get("/static/app.js")
    etag = first.headers["etag"]
    again = client.get("/static/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/static/app.js", headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/vendor/SHA256SUMS",
        "/static/nothing.js",
        "/static/",
    ],
)
def test_only_the_packaged_assets_are_reachable(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_vendored_files_are_the_pinned_releases_with_their_licences() -> None:
    sums = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.removeprefix("./")] = digest
    on_disk = {
        str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file() and p.name != "SHA256SUMS"
    }
    assert set(sums) == on_disk
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, f"{name} changed by hand"
    assert {"uplot/LICENSE", "swagger-ui/LICENSE", "swagger-ui/NOTICE"} <= on_disk
    versions = (VENDOR / "VERSIONS").read_text().split()
    assert versions[0] == "uplot" and versions[2] == "swagger-ui-dist"


def test_docs_use_the_local_swagger_ui(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert BUNDLE in page.text and "/static/vendor/swagger-ui/swagger-ui.css" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert client.get("/redoc").status_code == 404  # it would load ReDoc from a CDN
