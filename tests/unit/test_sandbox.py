"""Cleaning in a bounded child process: the same result, and a file past a bound is kept as sent."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from tests.hostile import MIB, docx_with_changes
from tests.unit.test_cleaning import docx, encode, odf, pdf_with_metadata, photo_with_exif, two_colours
from whistle.services import cleaning
from whistle.services.cleaning import CleanStatus, Outcome
from whistle.services.cleaning.sandbox import MAX_GROWTH, Bounds, Sandbox


def with_exif(image_format: str, **options: Any) -> bytes:
    exif = Image.Exif()
    exif[0x013B] = "MARKER-ARTIST"
    return encode(two_colours(), image_format, exif=exif, **options)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (photo_with_exif, "jpeg"),
        (lambda: with_exif("PNG"), "png"),
        (lambda: with_exif("WEBP", quality=95), "webp"),
        (lambda: with_exif("TIFF", compression="tiff_lzw"), "tiff"),
        (lambda: encode(two_colours().convert("P"), "GIF", comment=b"MARKER-GIF"), "gif"),
        (docx, "zip"),
        (lambda: odf("application/vnd.oasis.opendocument.text"), "zip"),
    ],
    ids=["jpeg", "png", "webp", "tiff", "gif", "docx", "odt"],
)
def test_every_kind_comes_out_of_the_child_as_it_would_here(make: Callable[[], bytes], kind: str) -> None:
    data = make()
    here = cleaning.clean_bytes(data, kind, MIB)

    there = Sandbox().clean_bytes(data, kind, MIB)

    assert there == here
    assert there.status == CleanStatus.CLEANED


def test_a_pdf_is_cleaned_in_the_child_too() -> None:
    outcome = Sandbox().clean_bytes(pdf_with_metadata(), "pdf", MIB)

    assert outcome.status == CleanStatus.CLEANED
    assert b"MARKER" not in (outcome.cleaned or b"MARKER")


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
