"""The officer's case list with 1,000, 10,000 and 100,000 cases, on SQLite and on PostgreSQL.

The cases are made by ``whistle seed`` (run as the command an operator would
run). Each page is fetched through the Flask test client, logged in as an
officer, so a figure is the whole request: the session, the list, the view
counts and the template. The services are also timed alone (``list_cases``
and ``view_counts``), to show where the time of a request goes.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import os
import pstats
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import func, select

from bench.common import (
    OUT,
    PASSWORD,
    ROOT,
    Instance,
    add_officers,
    csrf_token,
    fmt,
    log,
    make_instance,
    median,
    percentile,
    scratch_postgresql,
    table,
    write_section,
)
from whistle import create_app
from whistle.config import WEAK_KDF_ENV, Settings
from whistle.models import Officer, Report
from whistle.services import cases
from whistle.web.runtime import Runtime

GOAL_MEDIAN_MS = 50.0
GOAL_GROWTH = 1.5
PAGES = ("first", "middle", "last")
#: Each page is fetched up to ``rounds`` times, but no more than this long once it has MIN_ROUNDS figures.
CELL_BUDGET_MS = 4000.0
MIN_ROUNDS = 3
#: The sorts other than the default are timed with fewer requests: they are not the goal's pages.
OTHER_SORT_ROUNDS = 5
DATABASES_ENV = "BENCH_DATABASES"


@dataclass
class Cell:
    """One view's page at one size: request times in milliseconds."""

    times: list[float] = field(default_factory=list)
    #: How many cases the page showed (a view smaller than a page shows fewer, and costs less).
    rows: int = 0

    @property
    def median(self) -> float:
        return median(self.times)

    @property
    def p95(self) -> float:
        return percentile(self.times, 0.95)


@dataclass
class Size:
    #: How many cases the instance holds.
    reports: int
    seed_seconds: float
    cells: dict[tuple[cases.View, str], Cell] = field(default_factory=dict)
    #: Service calls alone, in milliseconds: list_cases on the last page of "all", and view_counts.
    list_service: list[float] = field(default_factory=list)
    counts_service: list[float] = field(default_factory=list)
    #: The other sorts of each view, first and last page: (view, sort, page) -> times.
    other_sorts: dict[tuple[cases.View, cases.Sort, str], Cell] = field(default_factory=dict)
    #: Share of the first pages' time by part of the stack (cProfile's own time).
    profile: dict[str, float] = field(default_factory=dict)


def seed(instance: Instance, count: int) -> float:
    """Run ``whistle seed --cases count`` on the instance; return how long it took."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WHISTLE_") or key == WEAK_KDF_ENV
    }
    env["WHISTLE_INSTANCE"] = str(instance.path)
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own command, with arguments we made
        [str(Path(sys.executable).parent / "whistle"), "seed", "--cases", str(count)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return time.perf_counter() - started


def _login(client: FlaskClient, email: str) -> None:
    token = csrf_token(client.get("/officer/login").get_data(as_text=True))
    response = client.post("/officer/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    if response.status_code != 303:
        raise RuntimeError(f"officer login failed with {response.status_code}")


def _middle(rt: Runtime, officer_id: int, view: cases.View, today: dt.date) -> str:
    """The cursor of the case halfway down a view, in its own order: the place a middle page starts."""
    key = cases.opening_key(view)
    with rt.session_factory() as db:
        officer = db.get(Officer, officer_id)
        assert officer is not None
        query = cases.view_query(officer, today, view, None).with_only_columns(key, Report.id)
        total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
        middle = db.execute(query.order_by(*cases.opening_order(view)).offset(total // 2).limit(1)).first()
    return "" if middle is None else str(cases.Cursor(0, middle[0], middle.id))


def _fetch(client: FlaskClient, url: str, cell: Cell) -> float:
    """One request of a page: how long it took (ms); the cell keeps how many rows it showed."""
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    cell.rows = response.get_data(as_text=True).count('<th scope="row">')
    return elapsed


def _time(pages: list[tuple[FlaskClient, str, Cell]], rounds: int) -> None:
    """The same page at every size in turn, round after round (the first round warms the caches).

    A shared machine's speed drifts over minutes; measured in turn, every size
    meets the same drift, and the ratios between sizes hold.
    """
    spent = [0.0] * len(pages)
    for turn in range(rounds + 1):
        for index, (client, url, cell) in enumerate(pages):
            elapsed = _fetch(client, url, cell)
            if turn:
                cell.times.append(elapsed)
                spent[index] += elapsed
        if turn >= MIN_ROUNDS and max(spent) > CELL_BUDGET_MS:
            break  # slow pages: fewer rounds, or the benchmark would take hours


#: Where a function's own time is counted, by the file it lives in (the first that matches).
PROFILE_BUCKETS = (
    ("database driver", ("sqlite3", "psycopg")),
    ("SQLAlchemy", ("sqlalchemy",)),
    ("templates (Jinja2)", ("jinja2", "templates/", "<template>")),
    ("Flask and Werkzeug", ("flask", "werkzeug")),
    ("cryptography", ("cryptography", "argon2")),
    ("Whistle", ("whistle",)),
)


def _profile(client: FlaskClient, urls: list[str], rounds: int = 5) -> dict[str, float]:
    """The share of a request's time spent in each part of the stack (own time, from cProfile)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        for url in urls:
            client.get(url)
    profiler.disable()
    shares: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_calls, _primitive, own, _cumulative, _callers) in stats.items():
        where = f"{filename} {function}"
        bucket = next((name for name, marks in PROFILE_BUCKETS if any(m in where for m in marks)), "other")
        shares[bucket] = shares.get(bucket, 0.0) + own
    total = sum(shares.values()) or 1.0
    return {name: spent / total for name, spent in sorted(shares.items(), key=lambda item: -item[1])}


@dataclass
class Measured:
    """One size's instance as the benchmark reads it: its app, a logged-in officer, and the pages' URLs."""

    size: Size
    rt: Runtime
    client: FlaskClient
    officer_id: int
    today: dt.date
    urls: dict[tuple[cases.View, str], str] = field(default_factory=dict)


def _open(instance: Instance, email: str, size: Size) -> Measured:
    app = create_app(Settings.load(instance.path))
    rt: Runtime = app.extensions["whistle"]
    client = app.test_client()
    _login(client, email)
    today = rt.clock.today()
    with rt.session_factory() as db:
        officer_id = db.query(Officer).filter_by(email=email).one().id
    opened = Measured(size, rt, client, officer_id, today)
    for view in cases.View:
        base = f"/officer/?view={view.value}"
        middle = f"{base}&after={_middle(rt, officer_id, view, today)}"
        for label, url in zip(PAGES, (base, middle, f"{base}&last=1"), strict=True):
            opened.urls[(view, label)] = url
    return opened


def measure(sizes: list[Measured], rounds: int) -> None:
    """Every page of every view at every size, in turn (see :func:`_time`); then, size by size, the
    services alone and a profile."""
    for view in cases.View:
        for label in PAGES:
            key = (view, label)
            _time([(m.client, m.urls[key], m.size.cells.setdefault(key, Cell())) for m in sizes], rounds)
        for sort in cases.Sort:
            if sort is cases.default_sort(view):
                continue
            for label, end in (("first", ""), ("last", "&last=1")):
                other = (view, sort, label)
                url = f"/officer/?view={view.value}&sort={sort.value}{end}"
                cells = [(m.client, url, m.size.other_sorts.setdefault(other, Cell())) for m in sizes]
                _time(cells, OTHER_SORT_ROUNDS)
    for m in sizes:
        with m.rt.session_factory() as db:
            officer = db.get(Officer, m.officer_id)
            assert officer is not None
            for turn in range(MIN_ROUNDS + 1):
                started = time.perf_counter()
                cases.list_cases(
                    db, officer, m.today, size=m.rt.settings.page_size, direction=cases.Direction.LAST
                )
                listed = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                cases.view_counts(db, officer, m.today)
                counted = (time.perf_counter() - started) * 1000
                if turn:
                    m.size.list_service.append(listed)
                    m.size.counts_service.append(counted)
        m.size.profile = _profile(m.client, [f"/officer/?view={view.value}" for view in cases.View])


def run_database(
    kind: str, urls: list[str | None], targets: list[int], rounds: int, results: Path | None = None
) -> list[Size]:
    """Seed one instance for each size (on the database at each of ``urls``; None for SQLite), then
    measure them together."""
    log(f"-- {kind} --")
    sizes: list[Size] = []
    opened: list[Measured] = []
    try:
        for target, url in zip(targets, urls, strict=True):
            instance = make_instance(OUT / f"list-{kind}" / f"instance-{target}", url)
            email = add_officers(instance, ["Olive Officer", "Bob Officer", "Carol Officer"])[0]
            log(f"  seeding {target:,} cases")
            seconds = seed(instance, target)
            log(f"  seeded in {seconds:.0f} s ({target / seconds:,.0f} cases/s)")
            size = Size(target, seconds)
            sizes.append(size)
            opened.append(_open(instance, email, size))
        log("  measuring every size in turn")
        measure(opened, rounds)
    finally:
        for m in opened:
            m.rt.engine.dispose()
    _write(kind, sizes, rounds, results)
    for size in sizes:
        worst = max(size.cells.values(), key=lambda cell: cell.median)
        log(
            f"  {size.reports:>7,} cases: slowest median {fmt(worst.median)} ms; "
            f"services alone: list {fmt(median(size.list_service))} ms, "
            f"counts {fmt(median(size.counts_service))} ms"
        )
    return sizes


def run(quick: bool = False, results: Path | None = None) -> dict[str, list[Size]]:
    """Each database gets a section of its own, written as soon as it is measured.

    ``BENCH_DATABASES=sqlite`` (or ``postgresql``) measures one of them only.
    """
    log("== Officer list: every saved view, first, middle and last page ==")
    targets = [60, 240] if quick else [1_000, 10_000, 100_000]
    rounds = 3 if quick else 15
    wanted = os.environ.get(DATABASES_ENV, "sqlite" if quick else "sqlite,postgresql").split(",")
    measured: dict[str, list[Size]] = {}
    for kind in ("sqlite", "postgresql"):
        if kind not in wanted:
            continue
        try:
            if kind == "sqlite":
                measured[kind] = run_database(kind, [None] * len(targets), targets, rounds, results)
            else:
                with ExitStack() as stack:
                    urls = [stack.enter_context(scratch_postgresql(f"whistle_bench_{n}")) for n in targets]
                    if None in urls:
                        continue
                    measured[kind] = run_database(kind, urls, targets, rounds, results)
        finally:
            shutil.rmtree(OUT / f"list-{kind}", ignore_errors=True)
    return measured


def _slowest_other(size: Size) -> str:
    if not size.other_sorts:
        return "-"
    (view, sort, page), cell = max(size.other_sorts.items(), key=lambda item: item[1].median)
    return f"{fmt(cell.median)} ms ({cases.VIEW_LABELS[view]} by {sort.value.replace('_', ' ')}, {page} page)"


def _write(kind: str, sizes: list[Size], rounds: int, results: Path | None) -> None:
    rows = []
    for view in cases.View:
        for label in PAGES:
            cells = [size.cells[(view, label)] for size in sizes]
            rows.append(
                [
                    cases.VIEW_LABELS[view],
                    label,
                    *[f"{fmt(cell.median)} / {fmt(cell.p95)} ({cell.rows})" for cell in cells],
                    f"{cells[-1].median / cells[0].median:.1f}x",
                    f"{cells[-1].median / cells[-2].median:.1f}x" if len(cells) > 1 else "-",
                ]
            )
    first, largest = sizes[0], sizes[-1]
    worst = max(cell.median for cell in largest.cells.values())
    growth = max(largest.cells[key].median / first.cells[key].median for key in largest.cells)
    before = sizes[-2] if len(sizes) > 1 else first
    full_growth = max(largest.cells[key].median / before.cells[key].median for key in largest.cells)
    sizes_header = [f"{size.reports:,} cases: median / p95 ms (rows)" for size in sizes]
    body = table(["view", "page", *sizes_header, "growth of median", f"growth from {before.reports:,}"], rows)
    notes = [
        "",
        f"Each figure: up to {rounds} requests (at least {MIN_ROUNDS}; fewer once they have taken "
        f"{CELL_BUDGET_MS / 1000:.0f} s) of `GET /officer/?view=...` through the Flask test "
        "client, logged in as an officer who holds a key for (nearly) every case, after one warm-up "
        "request; a request includes the session, the list, the six view counts (exact up to "
        f"{cases.COUNT_CAP:,}) and the template. Cases from `whistle seed` (received over three years, "
        "three officers). Pages are read from a cursor (keyset pagination): the first page, the page "
        "after the case halfway down the view (`&after=...`) and the last page (`&last=1`). In brackets, "
        "the cases the page showed: with 1,000 cases some views hold fewer than a page, and a page of "
        "ten rows costs less to read and render than one of fifty. Each size is an instance of its "
        "own, and they are measured in turn, request by request (a page at every size, then again), "
        "so that the shared machine's changing speed touches every size alike.",
        "",
        "The other sorts, first and last page of each view, "
        f"{OTHER_SORT_ROUNDS} requests each: slowest median "
        + "; ".join(f"{size.reports:,} cases {_slowest_other(size)}" for size in sizes)
        + ". They are not the goal's pages: each view opens in its own order, overdue and due "
        "within 7 days by the next deadline (soonest first), the others by the day received (newest first).",
        "",
        f"Slowest median at {largest.reports:,} cases {fmt(worst)} ms (goal under {GOAL_MEDIAN_MS:.0f} ms: "
        f"**{'met' if worst < GOAL_MEDIAN_MS else 'not met'}**); largest growth from {first.reports:,} to "
        f"{largest.reports:,} cases {growth:.1f}x (goal within {GOAL_GROWTH}x: "
        f"**{'met' if growth <= GOAL_GROWTH else 'not met'}**; from {before.reports:,} cases, where every "
        f"view fills its pages, {full_growth:.1f}x). "
        f"Seeding each size took {', '.join(f'{s.seed_seconds:.0f} s' for s in sizes)}.",
        "",
        f"Where the time of a request goes at {largest.reports:,} cases (cProfile, own time of each "
        "function, the first page of every view): "
        + ", ".join(f"{name} {share:.0%}" for name, share in largest.profile.items())
        + ".",
        "",
        "The services alone, median ms (`list_cases` for the last page of all cases / `view_counts`): "
        + "; ".join(
            f"{size.reports:,} cases {fmt(median(size.list_service))} / {fmt(median(size.counts_service))}"
            for size in sizes
        )
        + ".",
    ]
    title = {"sqlite": "Officer list (SQLite)", "postgresql": "Officer list (PostgreSQL)"}[kind]
    write_section(
        f"list-{kind}", title, body + "\n" + "\n".join(notes), **({"results": results} if results else {})
    )
