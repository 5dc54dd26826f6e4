"""The package as an operator installs it: built with ``python -m build``, installed from the wheel
into a new virtual environment, and run in a folder with no checkout.

The wheel must carry everything the portal runs from (templates, static files,
migrations, the gunicorn settings): these tests find out by using it. The build
and the environment are made once per session; dependencies come from the
package index (pip's cache when it has them). ``-m "not wheel"`` leaves them out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.functional.servers import Browser, free_port, receipt_on, report_fields
from tests.unit.databases import PG_ENV, SKIP_REASON, scratch_postgresql

pytestmark = pytest.mark.wheel

CHECKOUT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["version"]
OFFICER = "olive@example.org"


@dataclass(frozen=True)
class Installed:
    """A virtual environment holding the wheel, an empty folder to run it in, and its settings."""

    venv: Path
    folder: Path
    settings: dict[str, str]

    def environment(self, **extra: str) -> dict[str, str]:
        """No setting of the suite's own; the test's cheap Argon2 (below the portal's floor)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("WHISTLE_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
        }
        env.update(
            WHISTLE_TEST_WEAK_KDF="1",
            WHISTLE_KDF_TIME_COST="1",
            WHISTLE_KDF_MEMORY_COST="8",
            WHISTLE_INSTANCE=str(self.folder / "instance"),
        )
        env.update(self.settings)
        env.update(extra)
        return env

    def whistle(self, *args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [str(self.venv / "bin" / "whistle"), *args],
            cwd=self.folder,
            env=self.environment(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"whistle {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout


def _run(command: list[str], cwd: Path, timeout: float) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist and a wheel, the wheel built from the sdist (what ``python -m build`` does)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(CHECKOUT)], CHECKOUT, timeout=600)
    return out


@pytest.fixture(scope="session")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel and its PostgreSQL extra installed."""
    (wheel,) = dist.glob("whistle-*.whl")
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(venv)], venv, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, f"{wheel}[postgresql]"], venv, timeout=900)
    return venv


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def installed(request: pytest.FixtureRequest, venv: Path, tmp_path: Path) -> Iterator[Installed]:
    """The installed package and a folder outside the checkout, on SQLite or a scratch PostgreSQL database."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    if request.param == "sqlite":
        yield Installed(venv, folder, {})
        return
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(SKIP_REASON)
    with scratch_postgresql(server, "wheel") as url:
        yield Installed(venv, folder, {"WHISTLE_DATABASE_URL": url})


@contextlib.contextmanager
def serving(installed: Installed, *command: str) -> Iterator[int]:
    """Run a serving command on a free port until the portal answers; stop it afterwards."""
    port = free_port()
    log = installed.folder / f"{command[0]}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(installed.venv / "bin" / "whistle"),
                *command,
                *(("--port", str(port)) if command == ("run",) else ()),
            ],
            cwd=installed.folder,
            env=installed.environment(WHISTLE_BIND=f"127.0.0.1:{port}"),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"whistle {command[0]} exited:\n{log.read_text()}"
            with contextlib.suppress(OSError):
                if Browser(port, timeout=2).get("/health").status == 200:
                    break
            assert time.monotonic() < deadline, f"whistle {command[0]} did not answer:\n{log.read_text()}"
            time.sleep(0.2)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _checkout_files(*folders: str) -> set[str]:
    """The checkout's files under ``folders`` that git tracks, relative to the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *folders], cwd=CHECKOUT, capture_output=True, check=True
    ).stdout.decode()
    return {name for name in listed.split("\0") if name}


def test_the_sdist_and_the_wheel_carry_every_file_the_portal_runs_from(dist: Path) -> None:
    """Every module, template, static file and migration: a package or a file left out of
    pyproject.toml's lists would install, then fail where it is first needed."""
    (wheel,) = dist.glob("whistle-*.whl")
    (sdist,) = dist.glob("whistle-*.tar.gz")
    assert wheel.name == f"whistle-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}

    code = _checkout_files("whistle")
    data = _checkout_files("templates", "static", "migrations")
    assert "whistle/services/cleaning/__init__.py" in code and "templates/base.html" in data
    assert code - in_wheel == set(), "the wheel lacks modules"
    assert {f"whistle/{name}" for name in data} - in_wheel == set(), "the wheel lacks data files"
    assert (code | data) - in_sdist == set(), "the sdist lacks files"


def test_installed_from_the_wheel_the_portal_runs_outside_the_checkout(installed: Installed) -> None:
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import whistle; print(whistle.__file__)"],
        cwd=installed.folder,
        env=installed.environment(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(installed.venv)), f"whistle was imported from {where}"
    assert installed.whistle("--version").strip() == f"whistle {VERSION}"

    assert "ORGANISATION RECOVERY KEY" in installed.whistle("init")
    added = installed.whistle(
        "officer", "add", "--email", OFFICER, "--name", "Olive", "--admin", stdin=PASSWORD
    )
    assert f"Officer {OFFICER} created." in added
    assert "The database is up to date." in installed.whistle("db", "upgrade")
    on_sqlite = (installed.folder / "instance" / "whistle.db").exists()
    assert on_sqlite == ("WHISTLE_DATABASE_URL" not in installed.settings), "not the database asked for"

    # gunicorn with the packaged settings: a reporter's journey over HTTP, and the officer's login.
    with serving(installed, "serve") as port:
        reporter = Browser(port)
        sent = reporter.submit_form(
            "/report", report_fields("The rota leaves one worker for forty children.")
        )
        assert sent.status == 200, sent.describe()
        receipt = receipt_on(sent)
        assert "Raise a concern safely" in reporter.get("/").text
        assert reporter.get("/static/whistle.css").status == 200

        returning = Browser(port)
        back = returning.submit_form("/follow-up", [("receipt", receipt)])
        assert back.status == 303, back.describe()
        case = returning.get("/follow-up/case")
        assert case.status == 200, case.describe()
        assert 'action="/follow-up/case"' in case.text, "the case page offers no way to answer"
        answer = returning.submit_form("/follow-up/case", [("body", "It happened again on Monday.")])
        assert answer.status == 303, answer.describe()
        assert "It happened again on Monday." in returning.get("/follow-up/case?sent=1").text

        officer = Browser(port)
        assert officer.login(OFFICER, PASSWORD).status == 303
        assert len(officer.listed_reports()) == 1

    # Flask's development server, as `make run` starts it from a checkout.
    with serving(installed, "run") as port:
        landing = Browser(port).get("/")
        assert landing.status == 200, landing.describe()
        assert "Raise a concern safely" in landing.text
