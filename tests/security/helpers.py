"""Helpers for the security tests: what an attacker with a copy of the data would search for.

A *needle* is something that must never be found at rest (a marker string a
reporter typed, a receipt, a key, an address), together with every byte
pattern under which it could plausibly have been written: UTF-8 and UTF-16 for
text, raw, hex and base64 for keys. The scanners look for needles in the
instance folder's files, in every row of every table, and in log records.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from tests.conftest import REPORT, csrf_token
from whistle import crypto
from whistle.db import Base

RECEIPT_PATTERN = r"\b([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\b"


# --- posting forms with files, without the test client's own temporary files ---
#
# Werkzeug's test client encodes a large multipart body into a temporary file
# of its own, which it never closes. Encoding the body in memory keeps the
# tests free of that leak and makes every temporary file in a test Whistle's.


def multipart_body(fields: dict[str, object]) -> tuple[str, bytes]:
    """Encode form fields in memory; a file is ``(bytes, filename)`` or ``(bytes, filename, type)``."""
    values: MultiDict[str, object] = MultiDict()
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, tuple):
                data, filename, *content_type = item
                item = FileStorage(
                    io.BytesIO(data),
                    filename=filename,
                    content_type=content_type[0] if content_type else None,
                )
            values.add(key, item)
    boundary, body = encode_multipart(values)
    return f"multipart/form-data; boundary={boundary}", body


def post_multipart(client: FlaskClient, page: str, data: dict[str, object], action: str | None = None):
    """GET a form page, then POST it as multipart with its CSRF token, as a browser would."""
    html = client.get(page).get_data(as_text=True)
    content_type, body = multipart_body({"csrf_token": csrf_token(html), **data})
    return client.post(action or page, data=body, content_type=content_type)


def submit_report_with_files(client: FlaskClient, **fields: object) -> str:
    """Like conftest's ``submit_report``, encoded in memory; return the receipt shown."""
    response = post_multipart(client, "/report", {**REPORT, **fields})
    assert response.status_code == 200, response.get_data(as_text=True)
    match = re.search(RECEIPT_PATTERN, response.get_data(as_text=True))
    assert match, "no receipt on the page"
    return match.group(1)


# --- needles ----------------------------------------------------------------


@dataclass(frozen=True)
class Needle:
    label: str
    patterns: tuple[bytes, ...]
    #: Text needles are matched case-insensitively (ASCII), so a marker that was
    #: stored upper- or lower-cased is still found.
    fold_case: bool = False


def text_needle(text: str, label: str | None = None) -> Needle:
    patterns = {text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-16-be")}
    return Needle(label or text, tuple(sorted(p.lower() for p in patterns)), fold_case=True)


def text_needles(*texts: str) -> list[Needle]:
    return [text_needle(text) for text in texts]


def bytes_needle(label: str, raw: bytes) -> Needle:
    """A binary secret: raw, hex (either case) and every flavour of base64."""
    standard = base64.b64encode(raw)
    urlsafe = base64.urlsafe_b64encode(raw)
    patterns = {
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        standard,
        standard.rstrip(b"="),
        urlsafe,
        urlsafe.rstrip(b"="),
        # What a JSON string of the base64 would hold once escaped ("/" as "\/").
        standard.replace(b"/", b"\\/"),
    }
    # A prefix survives better than the whole when base64 is split across
    # lines or chunked: look for the first 24 bytes too (still 192 bits).
    patterns |= {base64.b64encode(raw[:24]), base64.urlsafe_b64encode(raw[:24])}
    return Needle(label, tuple(sorted(patterns)))


def receipt_forms(receipt: str) -> list[str]:
    """Every way a receipt could be written down: grouped, bare, spaced, either case."""
    normalised = crypto.normalise_receipt(receipt)
    grouped = crypto.format_code(normalised)
    spaced = grouped.replace("-", " ")
    return sorted({form for text in (normalised, grouped, spaced) for form in (text, text.lower())})


def receipt_needles(receipt: str) -> list[Needle]:
    return [text_needle(form, f"receipt ({form})") for form in receipt_forms(receipt)]


def find(haystack: bytes, needles: Iterable[Needle]) -> list[str]:
    """The labels of the needles found in ``haystack``."""
    folded: bytes | None = None
    found = []
    for needle in needles:
        if needle.fold_case:
            if folded is None:
                folded = haystack.lower()
            text = folded
        else:
            text = haystack
        if any(pattern in text for pattern in needle.patterns):
            found.append(needle.label)
    return found


# --- the instance folder --------------------------------------------------


def instance_files(root: Path) -> dict[str, bytes]:
    """Every regular file under the instance folder, by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def leaks_in_files(root: Path, needles: Iterable[Needle]) -> list[tuple[str, str]]:
    needles = list(needles)
    return [(name, label) for name, data in instance_files(root).items() for label in find(data, needles)]


# --- the database ---------------------------------------------------------


def value_bytes(value: object) -> bytes:
    """A stored value as an attacker would search it: raw bytes, text, or its repr."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return repr(value).encode("utf-8")


def database_values(engine: Engine) -> Iterator[tuple[str, str, object]]:
    """(table, column, value) for every column of every row of every mapped table."""
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for column, value in row._mapping.items():
                    yield table.name, str(column), value


def leaks_in_database(engine: Engine, needles: Iterable[Needle]) -> list[tuple[str, str, str]]:
    needles = list(needles)
    return [
        (table, column, label)
        for table, column, value in database_values(engine)
        for label in find(value_bytes(value), needles)
    ]


def row_counts(engine: Engine) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, _column, _value in database_values(engine):
        counts[table] = counts.get(table, 0) + 1
    return counts


def is_sqlite(app: Flask) -> bool:
    return app.extensions["whistle"].settings.database_url.startswith("sqlite")


# --- logs -----------------------------------------------------------------


def record_text(record: logging.LogRecord) -> bytes:
    """Everything a log record could carry into a file: message, arguments, exception."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    parts = [message, repr(record.msg), repr(record.args), record.exc_text or "", repr(record.__dict__)]
    return "\n".join(parts).encode("utf-8", "backslashreplace")


def leaks_in_records(
    records: Iterable[logging.LogRecord], needles: Iterable[Needle]
) -> list[tuple[str, str]]:
    needles = list(needles)
    return [(record.name, label) for record in records for label in find(record_text(record), needles)]


def capture_every_logger(caplog: object) -> None:
    """Set the root and every logger known so far to DEBUG for this test (caplog restores them)."""
    caplog.set_level(logging.DEBUG)  # type: ignore[attr-defined]
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)  # type: ignore[attr-defined]


class ListHandler(logging.Handler):
    """Collects records (after the logger's own filters have run)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
