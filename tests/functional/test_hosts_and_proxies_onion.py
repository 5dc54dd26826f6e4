"""Behind nginx and beside a Tor onion service, as docs/deploy.md sets them up.

nginx passes the public host and scheme (X-Forwarded-Host, X-Forwarded-Proto);
with ``proxy_count = 1`` the app believes them, answers only to
``trusted_hosts``, and sends HSTS over HTTPS. With ``onion_location`` set, every
page served under the public name offers Tor Browser the same page on the
onion service (the Onion-Location header); pages reached through the onion
service itself do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import CHEAP_KDF, runtime_of
from whistle import create_app
from whistle.config import ConfigError, Settings, create_instance
from whistle.db import upgrade

ONION_HOST = "whistle" + "a" * 43 + "x2ykqd.onion"
ONION = f"http://{ONION_HOST}"
PUBLIC_HOST = "speakup.example.org"
#: What nginx sends on for a request to https://speakup.example.org (docs/deploy.md).
VIA_NGINX = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC_HOST}
#: What nginx's onion server block sends on for a request that came through Tor.
VIA_ONION = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": ONION_HOST}
UPSTREAM = "http://127.0.0.1:8000"


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    url = f"sqlite:///{path / 'whistle.db'}"
    create_instance(path, f'{CHEAP_KDF}database_url = "{url}"\n')
    upgrade(url)
    return path


@pytest.fixture
def make_app(instance_path: Path) -> Iterator[object]:
    made: list[Flask] = []

    def make(**overrides: object) -> FlaskClient:
        app = create_app(Settings.load(instance_path, **overrides))
        app.config["TESTING"] = True
        made.append(app)
        return app.test_client()

    yield make
    for app in made:
        runtime_of(app).engine.dispose()


def behind_nginx(make_app, **overrides: object) -> FlaskClient:  # type: ignore[no-untyped-def]
    return make_app(
        proxy_count=1,
        trusted_hosts=f"{PUBLIC_HOST},{ONION_HOST}",
        secure_cookies=True,
        onion_location=ONION,
        **overrides,
    )


def test_the_onion_name_is_56_characters() -> None:
    assert len(ONION_HOST) == 56 + len(".onion")


def test_no_onion_location_unless_set(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app()
    assert "Onion-Location" not in client.get("/").headers


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/follow-up", "/follow-up"),
        ("/officer/?view=overdue&sort=due", "/officer/?view=overdue&sort=due"),
        ("/no-such-page", "/no-such-page"),
        ("/caf%C3%A9%20x", "/caf%C3%A9%20x"),
    ],
)
def test_every_page_offers_its_onion_twin(make_app, path: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    client = behind_nginx(make_app)
    response = client.get(path, base_url=UPSTREAM, headers=VIA_NGINX)
    assert response.headers["Onion-Location"] == ONION + expected
    # The rest of the security headers are there with it, on error pages too.
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" in response.headers


def test_static_files_carry_it_too(make_app) -> None:  # type: ignore[no-untyped-def]
    client = behind_nginx(make_app)
    with client.get("/static/whistle.css", base_url=UPSTREAM, headers=VIA_NGINX) as response:
        assert response.status_code == 200
        assert response.headers["Onion-Location"] == f"{ONION}/static/whistle.css"


def test_pages_reached_through_the_onion_service_do_not_offer_it_again(make_app) -> None:  # type: ignore[no-untyped-def]
    client = behind_nginx(make_app)
    response = client.get("/report", base_url=UPSTREAM, headers=VIA_ONION)
    assert response.status_code == 200
    assert "Onion-Location" not in response.headers
    # Plain HTTP inside Tor: no HSTS (Tor Browser treats .onion as a secure context).
    assert "Strict-Transport-Security" not in response.headers


def test_behind_nginx_the_public_name_and_https_are_believed(make_app) -> None:  # type: ignore[no-untyped-def]
    client = behind_nginx(make_app)
    response = client.get("/report", base_url=UPSTREAM, headers=VIA_NGINX)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_a_host_that_is_not_trusted_is_refused(make_app) -> None:  # type: ignore[no-untyped-def]
    client = behind_nginx(make_app)
    response = client.get("/", base_url=UPSTREAM, headers={**VIA_NGINX, "X-Forwarded-Host": "evil.example"})
    assert response.status_code == 400
    assert "does not answer to that address" in response.get_data(as_text=True)
    assert response.headers["X-Frame-Options"] == "DENY"


def test_without_a_proxy_forwarded_headers_are_ignored(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(trusted_hosts=PUBLIC_HOST, onion_location=ONION)
    # Straight to gunicorn: a client's own X-Forwarded-* must change nothing.
    response = client.get("/", base_url=f"http://{PUBLIC_HOST}", headers=VIA_ONION)
    assert response.status_code == 200
    assert response.headers["Onion-Location"] == f"{ONION}/"
    spoofed = client.get("/", base_url=f"http://{PUBLIC_HOST}", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers


def test_x_forwarded_for_is_never_read(make_app) -> None:  # type: ignore[no-untyped-def]
    client = behind_nginx(make_app)
    response = client.get("/", base_url=UPSTREAM, headers={**VIA_NGINX, "X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 200
    assert "198.51.100.7" not in response.get_data(as_text=True)
    assert not any("198.51.100.7" in value for _name, value in response.headers.items())


@pytest.mark.parametrize(
    "value",
    [
        "https://example.org",
        "http://short.onion",
        f"{ONION}/path",
        f"{ONION}\r\nSet-Cookie: x=1",
        ONION_HOST,
        f"javascript://{ONION_HOST}",
    ],
)
def test_an_onion_location_that_is_not_an_onion_address_stops_start_up(
    instance_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match="onion_location"):
        Settings.load(instance_path, onion_location=value)


def test_a_trailing_slash_is_allowed(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(onion_location=ONION + "/")
    assert client.get("/report").headers["Onion-Location"] == f"{ONION}/report"
