"""Identifying metadata is removed from uploads before they are sealed, and everyone is told."""

from __future__ import annotations

import io
import re

from PIL import Image

from tests.conftest import follow_up, form_post, login, reports_listed, runtime_of, submit_report
from tests.hostile import docx_with_zeros

ARTIST = "MARKER-ARTIST-Jane-Doe"


def _photo_with_exif() -> bytes:
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x013B] = ARTIST  # Artist
    exif[0x010F] = "MARKER-MAKE"  # Make
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPSLatitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _officer_downloads(app, alice) -> tuple[str, list[bytes]]:
    officer = app.test_client()
    login(officer, alice)
    (report_id,) = reports_listed(officer)
    page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    links = re.findall(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page)
    return page, [officer.get(link).data for link in links]


def test_a_photo_loses_its_exif_and_gps_before_it_is_sealed(client, app, alice):
    photo = _photo_with_exif()
    assert ARTIST.encode() in photo
    receipt_page = form_post(
        client,
        "/report",
        {
            "category": "other",
            "what_happened": "See the photo.",
            "immediate_risk": "no",
            "raised_before": "no",
            "attachments": [(io.BytesIO(photo), "ward.jpg")],
        },
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert "Hidden details (such as author, device or location) were removed." in receipt_page

    page, (downloaded,) = _officer_downloads(app, alice)
    assert "Hidden details (such as author, device or location) were removed." in page
    assert ARTIST.encode() not in downloaded
    assert b"MARKER-MAKE" not in downloaded
    cleaned = Image.open(io.BytesIO(downloaded))
    assert cleaned.size == (40, 20)
    assert len(cleaned.getexif()) == 0


def test_the_reporter_can_keep_a_file_exactly_as_it_is(client, app, alice):
    photo = _photo_with_exif()
    submit_report(client, attachments=[(io.BytesIO(photo), "dated.jpg")], keep_original="y")
    page, (downloaded,) = _officer_downloads(app, alice)
    assert downloaded == photo
    assert "Kept exactly as sent, hidden details included" in page


def test_a_type_that_cannot_be_cleaned_is_stored_as_sent_and_said_so(client, app, alice):
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100
    receipt = submit_report(client, attachments=[(io.BytesIO(video), "clip.mp4")])
    page, (downloaded,) = _officer_downloads(app, alice)
    assert downloaded == video
    assert "This type of file cannot be cleaned" in page
    # The reporter is warned on the form before sending, and told again on their case page.
    form = client.get("/report").get_data(as_text=True)
    assert "cannot be cleaned" in form and "videos" in form
    reporter = app.test_client()
    follow_up(reporter, receipt)
    assert "This type of file cannot be cleaned" in reporter.get("/follow-up/case").get_data(as_text=True)


def test_zip_bombs_are_stored_as_small_as_they_were_sent_and_marked_not_cleaned(client, app, alice):
    bomb = docx_with_zeros("mimetype", 100)  # about 100 KB that inflates to 100 MiB
    submit_report(client, attachments=[(io.BytesIO(bomb), f"rota-{index}.docx") for index in range(3)])

    page, downloads = _officer_downloads(app, alice)
    assert downloads == [bomb] * 3
    assert page.count("Not cleaned: it would take too much memory or time to clean.") == 3
    stored = sum(path.stat().st_size for path in runtime_of(app).store.root.rglob("*") if path.is_file())
    assert stored < 4 * len(bomb)
