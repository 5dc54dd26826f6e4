"""``GET /health``: what a load balancer or a monitor sees when the process can serve, and when it cannot.

The failures are real ones: a store folder that is no longer a folder, a
database that stops answering, a Redis that does not answer.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil

import pytest
from flask import Flask

from tests.conftest import database_down, runtime_of
from whistle import create_app


def _unavailable(app: Flask, caplog: pytest.LogCaptureFixture, part: str) -> None:
    with caplog.at_level(logging.ERROR, logger="whistle"):
        response = app.test_client().get("/health")
    assert response.status_code == 503
    # The public answer names no part: which one failed is for the operator's log.
    assert response.get_data(as_text=True) == "unavailable\n"
    assert f"health check: {part} unavailable" in caplog.text


def test_a_healthy_process_answers_ok_without_a_session(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok\n"
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.head("/health").status_code == 200


def test_a_file_store_that_is_gone_makes_the_process_unavailable(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    root = runtime_of(app).store.root
    shutil.rmtree(root)
    root.write_bytes(b"")  # a file where the folder was: nothing can be stored
    _unavailable(app, caplog, "file store")
    root.unlink()
    root.mkdir()
    assert app.test_client().get("/health").status_code == 200


def test_a_database_that_stops_answering_makes_the_process_unavailable(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with database_down(app):
        _unavailable(app, caplog, "database")
    assert app.test_client().get("/health").status_code == 200


def test_a_rate_limit_storage_that_does_not_answer_makes_the_process_unavailable(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime_of(app)
    # Nothing listens on port 1: the Redis of this process is down.
    down = create_app(dataclasses.replace(rt.settings, rate_limit_storage="redis://127.0.0.1:1/0"))
    try:
        _unavailable(down, caplog, "rate-limit storage")
    finally:
        runtime_of(down).engine.dispose()


@pytest.mark.parametrize("interface", ["reporter", "officer"])
def test_each_half_of_a_split_deployment_answers(app: Flask, interface: str) -> None:
    settings = dataclasses.replace(runtime_of(app).settings, interface=interface)
    half = create_app(settings)
    try:
        assert half.test_client().get("/health").get_data(as_text=True) == "ok\n"
    finally:
        runtime_of(half).engine.dispose()
