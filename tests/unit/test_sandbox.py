"""Cleaning in a bounded child process: the same result, and a file past a bound is kept as sent."""

from __future__ import annotations

import io
import time
import zipfile

from PIL import Image

from tests.hostile import MIB, docx_with_changes
from tests.unit.test_cleaning import docx, photo_with_exif
from whistle.services import cleaning
from whistle.services.cleaning import CleanStatus, Outcome
from whistle.services.cleaning.sandbox import MAX_GROWTH, Bounds, Sandbox


def test_a_photo_and_a_document_come_out_of_the_child_as_they_would_here() -> None:
    sandbox = Sandbox()
    for data, kind in ((photo_with_exif(), "jpeg"), (docx(), "zip")):
        here = cleaning.clean_bytes(data, kind, MIB)

        there = sandbox.clean_bytes(data, kind, MIB)

        assert there == here
        assert there.status == CleanStatus.CLEANED


def test_an_unknown_zip_comes_back_as_a_file_to_keep() -> None:
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("notes.txt", "hello")

    outcome = Sandbox().clean_bytes(plain_zip.getvalue(), "zip", MIB)

    assert outcome == Outcome(CleanStatus.UNSUPPORTED, "")


def test_a_picture_that_needs_more_memory_than_the_child_may_have_is_kept_as_sent() -> None:
    # 7,000 x 7,000 pixels: 147 MB once decoded, and a copy of that to make it upright.
    picture = io.BytesIO()
    Image.new("RGB", (7_000, 7_000), "white").save(picture, "PNG")
    data = picture.getvalue()
    assert Sandbox().clean_bytes(data, "png", 64 * MIB).status == CleanStatus.NOTHING_FOUND

    outcome = Sandbox(Bounds(memory_bytes=256 * MIB)).clean_bytes(data, "png", 64 * MIB)

    assert outcome == Outcome(CleanStatus.OVER_BOUNDS, "png")


def test_a_document_that_takes_more_cpu_time_than_the_child_may_have_is_kept_as_sent() -> None:
    # 400,000 tracked changes, each with an author to replace: seconds of parsing.
    data = docx_with_changes(400_000, padding=200_000)

    outcome = Sandbox(Bounds(cpu_seconds=1)).clean_bytes(data, "zip", 64 * MIB)

    assert outcome == Outcome(CleanStatus.OVER_BOUNDS, "")


def test_a_child_that_takes_longer_than_the_clock_allows_is_stopped() -> None:
    data = docx_with_changes(400_000, padding=200_000)
    started = time.monotonic()

    outcome = Sandbox(Bounds(wall_seconds=0.2)).clean_bytes(data, "zip", 64 * MIB)

    assert outcome == Outcome(CleanStatus.OVER_BOUNDS, "")
    assert time.monotonic() - started < 2


def test_a_cleaned_copy_far_larger_than_the_file_is_refused() -> None:
    # Noise saved at the lowest JPEG quality grows many times over at quality 95.
    noise = io.BytesIO()
    Image.effect_noise((600, 600), 200).convert("RGB").save(noise, "JPEG", quality=1)
    data = noise.getvalue()
    assert len(cleaning.clean_bytes(data, "jpeg", len(data)).cleaned or b"") > MAX_GROWTH * len(data) + 1024

    outcome = Sandbox().clean_bytes(data, "jpeg", len(data))

    assert outcome == Outcome(CleanStatus.OVER_BOUNDS, "jpeg")
