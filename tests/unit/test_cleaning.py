"""Tests of whistle.services.metadata: what an employer could read in a cleaned file.

Every fixture is made here, with Pillow, pypdf and zipfile, and carries marker
strings where identifying metadata would be; a test then looks for the
markers in every byte of the result. Uploads are handed over as a stream with
only ``read(n)``, as the web layer does, which proves that cleaning never
seeks. No mocks.
"""

from __future__ import annotations

import functools
import io
import zipfile
from typing import IO, Any, cast

import pytest
from PIL import Image, ImageCms, ImageSequence
from PIL.PngImagePlugin import PngInfo
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

from tests.hostile import MIB, docx_nested, docx_with_zeros
from whistle.services import cleaning
from whistle.services.cleaning import Cleaned, CleanStatus


class ReadOnce:
    """An upload as the web layer hands it over: ``read(n)`` only, forward only."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self.position + size
        chunk = self._data[self.position : end]
        self.position += len(chunk)
        return chunk


def read_all(stream: IO[bytes], piece: int = 4096) -> bytes:
    chunks = []
    while chunk := stream.read(piece):
        chunks.append(chunk)
    return b"".join(chunks)


def clean(data: bytes, **options: Any) -> tuple[Cleaned, bytes]:
    result = cleaning.clean(cast(IO[bytes], ReadOnce(data)), **options)
    return result, read_all(result.stream)


def entries(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return {entry.filename: archive.read(entry) for entry in archive.infolist()}


def assert_stored_as_is(data: bytes, status: CleanStatus, kind: str, **options: Any) -> None:
    result, out = clean(data, **options)
    assert (result.status, result.kind) == (status, kind)
    assert out == data


# --- images ---------------------------------------------------------------------------------------


def two_colours(size: tuple[int, int] = (40, 20), mode: str = "RGB") -> Image.Image:
    """Red on the left half, blue on the right: shows which way up a picture is."""
    image = Image.new(mode, size, "red")
    image.paste("blue", (size[0] // 2, 0, size[0], size[1]))
    return image


def encode(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


@functools.cache  # a profile made now carries the time, to the second, in its header
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def photo_with_exif() -> bytes:
    """A JPEG as a phone makes it: device, author, place, a blob in the maker note, turned sideways."""
    exif = Image.Exif()
    exif[0x010F] = "MARKER-MAKE"
    exif[0x0110] = "MARKER-MODEL"
    exif[0x013B] = "MARKER-ARTIST"
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif.get_ifd(0x8769)[0x927C] = b"MARKER-MAKERNOTE" + encode(Image.new("RGB", (8, 8)), "JPEG")
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 12.5)
    gps[27] = b"ASCII\x00\x00\x00MARKER-GPS"
    return encode(
        two_colours(),
        "JPEG",
        exif=exif,
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">MARKER-XMP</x:xmpmeta>',
        comment=b"MARKER-COMMENT",
        icc_profile=srgb_profile(),
    )


def test_a_photo_loses_exif_gps_xmp_and_comment_and_is_turned_upright() -> None:
    photo = photo_with_exif()
    for marker in (b"MARKER-ARTIST", b"MARKER-GPS", b"MARKER-MAKERNOTE", b"MARKER-XMP", b"MARKER-COMMENT"):
        assert marker in photo

    result, out = clean(photo)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "jpeg")
    assert b"MARKER" not in out
    assert b"Exif" not in out
    with Image.open(io.BytesIO(out)) as image:
        assert image.format == "JPEG"
        assert not image.getexif()
        assert {"exif", "xmp", "comment"}.isdisjoint(image.info)
        assert image.info["icc_profile"] == srgb_profile()  # colours stay right
        assert image.size == (20, 40)
        rgb = image.convert("RGB")
        red, _, blue = cast(tuple[int, int, int], rgb.getpixel((10, 5)))
        assert red > 200 and blue < 60  # the left edge, now on top
        red, _, blue = cast(tuple[int, int, int], rgb.getpixel((10, 35)))
        assert blue > 200 and red < 60


def test_a_cleaned_photo_has_nothing_left_to_find() -> None:
    _, once = clean(photo_with_exif())

    result, twice = clean(once)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "jpeg")
    with Image.open(io.BytesIO(twice)) as image:
        assert image.size == (20, 40)


def test_only_the_main_picture_of_an_mpo_file_is_kept() -> None:
    main, depth_map = two_colours((32, 16)), Image.new("RGB", (32, 16), "green")
    mpo = encode(main, "MPO", save_all=True, append_images=[depth_map])
    with Image.open(io.BytesIO(mpo)) as image:
        assert getattr(image, "n_frames", 1) == 2

    result, out = clean(mpo)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "jpeg")
    with Image.open(io.BytesIO(out)) as image:
        assert image.format == "JPEG"
        assert getattr(image, "n_frames", 1) == 1
        red, green, _ = cast(tuple[int, int, int], image.convert("RGB").getpixel((2, 2)))
        assert red > 200 and green < 60


def test_png_text_chunks_are_removed() -> None:
    info = PngInfo()
    info.add_text("Author", "MARKER-PNG")
    info.add_itxt("Description", "MARKER-ITXT")
    info.add_text("Comment", "MARKER-ZTXT", zip=True)
    png = encode(two_colours(), "PNG", pnginfo=info)
    assert b"MARKER-PNG" in png

    result, out = clean(png)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "png")
    assert b"MARKER" not in out
    with Image.open(io.BytesIO(out)) as image, Image.open(io.BytesIO(png)) as original:
        assert cast(Any, image).text == {}
        assert image.tobytes() == original.tobytes()  # lossless


def test_a_png_without_text_is_nothing_found_and_keeps_its_transparency() -> None:
    image = two_colours().convert("P")
    png = encode(image, "PNG", transparency=0)

    result, out = clean(png)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "png")
    with Image.open(io.BytesIO(out)) as cleaned:
        assert cleaned.mode == "P"
        assert cleaned.info["transparency"] == 0
        assert cleaned.tobytes() == image.tobytes()


def test_webp_loses_its_exif() -> None:
    exif = Image.Exif()
    exif[0x013B] = "MARKER-WEBP"
    webp = encode(two_colours(), "WEBP", exif=exif, quality=95)
    assert b"MARKER-WEBP" in webp

    result, out = clean(webp)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "webp")
    assert b"MARKER" not in out
    with Image.open(io.BytesIO(out)) as image:
        assert image.size == (40, 20)
        assert "exif" not in image.info


def test_a_plain_webp_is_nothing_found() -> None:
    result, out = clean(encode(two_colours(), "WEBP"))

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "webp")
    with Image.open(io.BytesIO(out)) as image:
        assert image.size == (40, 20)


def test_an_animated_webp_keeps_its_frames_timing_and_loop() -> None:
    frames = [Image.new("RGB", (24, 24), colour) for colour in ("red", "green", "blue")]
    webp = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=2
    )

    result, out = clean(webp)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "webp")
    with Image.open(io.BytesIO(out)) as image:
        assert getattr(image, "n_frames", 1) == 3
        assert image.info["loop"] == 2
        durations = []
        for frame in ImageSequence.Iterator(image):
            frame.load()  # WebP reads a frame's timing when it decodes it
            durations.append(frame.info["duration"])
        assert durations == [100, 200, 300]


def test_tiff_tags_that_name_someone_are_removed() -> None:
    tiff = encode(two_colours(), "TIFF", tiffinfo={315: "MARKER-TIFF-ARTIST", 270: "MARKER-DESCRIPTION"})
    assert b"MARKER-TIFF-ARTIST" in tiff

    result, out = clean(tiff)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "tiff")
    assert b"MARKER" not in out
    with Image.open(io.BytesIO(out)) as image, Image.open(io.BytesIO(tiff)) as original:
        assert image.size == (40, 20)
        assert image.tobytes() == original.tobytes()


def test_every_page_of_a_scanned_tiff_is_kept() -> None:
    pages = [Image.new("1", (64, 80), colour) for colour in (0, 1, 0)]
    tiff = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="group4")

    result, out = clean(tiff)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "tiff")
    with Image.open(io.BytesIO(out)) as image:
        assert getattr(image, "n_frames", 1) == 3
        assert [frame.getpixel((0, 0)) for frame in ImageSequence.Iterator(image)] == [0, 255, 0]


def test_a_camera_raw_file_is_not_reduced_to_its_preview() -> None:
    raw_like = encode(Image.new("RGB", (16, 12)), "TIFF", tiffinfo={330: 0})

    assert_stored_as_is(raw_like, CleanStatus.UNSUPPORTED, "tiff")


def test_a_gif_comment_is_removed() -> None:
    gif = encode(two_colours().convert("P"), "GIF", comment=b"MARKER-GIF")
    assert b"MARKER-GIF" in gif

    result, out = clean(gif)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "gif")
    assert b"MARKER" not in out
    with Image.open(io.BytesIO(out)) as image:
        assert image.size == (40, 20)
        assert "comment" not in image.info


@pytest.mark.parametrize("loop", [None, 0])
def test_an_animated_gif_keeps_its_frames(loop: int | None) -> None:
    frames = [Image.new("P", (20, 20), index) for index in (1, 2, 3)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    options: dict[str, Any] = {} if loop is None else {"loop": loop}
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=[50, 60, 70], **options)

    result, out = clean(gif)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "gif")
    with Image.open(io.BytesIO(out)) as image:
        assert getattr(image, "n_frames", 1) == 3
        assert ("loop" in image.info) == (loop is not None)
        colours = [frame.convert("RGB").getpixel((5, 5)) for frame in ImageSequence.Iterator(image)]
        assert colours == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_a_truncated_jpeg_is_stored_as_it_came() -> None:
    assert_stored_as_is(photo_with_exif()[:300], CleanStatus.FAILED, "jpeg")


def test_garbage_after_a_png_signature_is_stored_as_it_came() -> None:
    assert_stored_as_is(b"\x89PNG\r\n\x1a\n" + b"not a png at all" * 10, CleanStatus.FAILED, "png")


def test_a_decompression_bomb_is_refused() -> None:
    # 90 million pixels, just over Pillow's limit, in a file of a few kilobytes.
    bomb = encode(Image.new("1", (10_000, 9_000)), "PNG")

    assert_stored_as_is(bomb, CleanStatus.OVER_BOUNDS, "png")


def test_a_picture_under_pillows_limit_but_too_large_to_clean_safely_is_refused_before_decoding() -> None:
    # 9,400 x 9,400 pixels of black: a few hundred kilobytes, and most of a gigabyte once decoded.
    bomb = encode(Image.new("RGB", (9_400, 9_400)), "PNG")
    assert Image.MAX_IMAGE_PIXELS > 9_400 * 9_400

    assert_stored_as_is(bomb, CleanStatus.OVER_BOUNDS, "png")


def test_pages_that_together_hold_too_many_pixels_are_refused() -> None:
    # Each page is under the limit alone; both together are not.
    pages = [Image.new("1", (6_000, 6_000)) for _ in range(2)]
    tiff = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="group4")

    assert_stored_as_is(tiff, CleanStatus.OVER_BOUNDS, "tiff")


# --- PDF --------------------------------------------------------------------------------------------


def annotation(subtype: str, title: str) -> DictionaryObject:
    return DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject(subtype),
            NameObject("/Rect"): ArrayObject(
                [NumberObject(10), NumberObject(10), NumberObject(50), NumberObject(50)]
            ),
            NameObject("/T"): TextStringObject(title),
            NameObject("/Contents"): TextStringObject("NoteText"),
        }
    )


def pdf_with_metadata() -> bytes:
    """Author and creator, XMP, Illustrator-style private data, a sticky note and a form field.

    pypdf escapes "-" in strings, so these markers are plain letters.
    """
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.add_blank_page(200, 200)
    writer.add_metadata({"/Author": "MarkerPdfAuthor", "/Creator": "MarkerPdfCreator"})
    writer.xmp_metadata = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">MarkerPdfXmp</x:xmpmeta>'
    private = StreamObject()
    private.set_data(b"MarkerPdfPieceInfo")
    page = writer.pages[0]
    page[NameObject("/PieceInfo")] = DictionaryObject(
        {NameObject("/Illustrator"): writer._add_object(private)}
    )
    writer.add_annotation(0, annotation("/Text", "MarkerPdfCommenter"))
    writer.add_annotation(0, annotation("/Widget", "case_number"))
    writer.generate_file_identifiers()
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_a_pdf_loses_its_information_xmp_private_data_and_commenters() -> None:
    pdf = pdf_with_metadata()
    for marker in (b"MarkerPdfAuthor", b"MarkerPdfXmp", b"MarkerPdfPieceInfo", b"MarkerPdfCommenter"):
        assert marker in pdf
    original_id = cast(Any, PdfReader(io.BytesIO(pdf)).trailer["/ID"])[0]

    result, out = clean(pdf)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "pdf")
    assert b"MarkerPdf" not in out
    reader = PdfReader(io.BytesIO(out))
    assert len(reader.pages) == 2
    assert reader.metadata is None
    assert "/Metadata" not in reader.root_object
    assert "/PieceInfo" not in reader.pages[0]
    annotations = [item.get_object() for item in cast(Any, reader.pages[0]["/Annots"])]
    titles = {str(item["/Subtype"]): item["/T"] for item in annotations}
    assert titles == {"/Text": "Author", "/Widget": "case_number"}  # a form field keeps its name
    assert cast(Any, reader.trailer["/ID"])[0] != original_id


def test_a_cleaned_pdf_has_nothing_left_to_find() -> None:
    _, once = clean(pdf_with_metadata())

    result, twice = clean(once)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "pdf")
    assert len(PdfReader(io.BytesIO(twice)).pages) == 2


def test_an_encrypted_pdf_is_stored_as_it_came() -> None:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)

    assert_stored_as_is(buffer.getvalue(), CleanStatus.UNSUPPORTED, "pdf")


def test_a_broken_pdf_is_stored_as_it_came() -> None:
    assert_stored_as_is(b"%PDF-1.7\nthis is not a PDF body\n", CleanStatus.FAILED, "pdf")


# --- Office Open XML ---------------------------------------------------------------------------------

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
CONTENT_TYPES = (
    DECLARATION + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/></Types>'
)
PACKAGE_RELS = (
    f'{DECLARATION}<Relationships xmlns="{RELS}">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>'
)
DOCUMENT = (
    DECLARATION + '<?mso-application progid="Word.Document"?>'
    f'<w:document xmlns:w="{W}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:w14="http://schemas.microsoft.com/office/word/2010/wordml" '
    'xmlns:wp14="http://schemas.microsoft.com/office/word/2010/wordprocessingDrawing" '
    'mc:Ignorable="w14 wp14"><w:body><w:p w14:paraId="1A2B3C4D">'
    '<w:r><w:t xml:space="preserve">BODY-TEXT &amp; a title </w:t></w:r>'
    '<w:ins w:id="1" w:author="MARKER-TRACK" w:date="2024-03-01T09:30:00Z">'
    "<w:r><w:t>added</w:t></w:r></w:ins>"
    "</w:p></w:body></w:document>"
)
COMMENTS = (
    f'{DECLARATION}<w:comments xmlns:w="{W}"><w:comment w:id="0" w:author="MARKER-COMMENT" '
    'w:date="2024-03-01T09:30:00Z" w:initials="MC"><w:p><w:r><w:t>COMMENT-TEXT</w:t></w:r></w:p>'
    "</w:comment></w:comments>"
)
PEOPLE = (
    DECLARATION + '<w15:people xmlns:w15="http://schemas.microsoft.com/office/word/2012/wordml">'
    '<w15:person w15:author="MARKER-PERSON"><w15:presenceInfo w15:providerId="AD" '
    'w15:userId="S::MARKER-ACCOUNT@example.org::1234"/></w15:person></w15:people>'
)
SETTINGS_RELS = (
    f'{DECLARATION}<Relationships xmlns="{RELS}"><Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" '
    'Target="file:///C:\\Users\\MARKER-USER\\AppData\\Roaming\\Microsoft\\Templates\\Normal.dotm" '
    'TargetMode="External"/><Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" '
    'Target="media/image1.png"/>'
    "</Relationships>"
)
CORE = (
    DECLARATION + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>MARKER-TITLE</dc:title>'
    "<dc:creator>MARKER-CREATOR</dc:creator><cp:keywords/>"
    "<cp:lastModifiedBy>MARKER-EDITOR<?note inside?></cp:lastModifiedBy><cp:revision>3</cp:revision>"
    '<dcterms:created xsi:type="dcterms:W3CDTF">2024-03-01T09:30:00Z</dcterms:created>'
    "<dc:language>en-GB</dc:language></cp:coreProperties>"
)
APP = (
    DECLARATION
    + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
    "<Template>MARKER-TEMPLATE.dotm</Template><Application>Microsoft Office Word</Application>"
    "<Company>MARKER-COMPANY</Company><Manager>MARKER-MANAGER</Manager></Properties>"
)
CUSTOM = (
    DECLARATION
    + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
    'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="Employee">'
    "<vt:lpwstr>MARKER-CUSTOM</vt:lpwstr></property></Properties>"
)
IMAGE = b"\x89PNG\r\n\x1a\n\x00\x00\x00 MARKER-NOT-XML-BUT-KEPT-AS-IS"


def package(*parts: tuple[str, str | bytes], stored: tuple[str, ...] = ("mimetype",)) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in parts:
            compression = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo(name, date_time=(2024, 3, 1, 9, 30, 0))
            archive.writestr(info, content, compress_type=compression)
    return buffer.getvalue()


def docx() -> bytes:
    return package(
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", PACKAGE_RELS),
        ("word/", b""),
        ("word/document.xml", DOCUMENT),
        ("word/comments.xml", COMMENTS),
        ("word/people.xml", PEOPLE),
        ("word/_rels/settings.xml.rels", SETTINGS_RELS),
        ("word/media/image1.png", IMAGE),
        ("docProps/core.xml", CORE),
        ("docProps/app.xml", APP),
        ("docProps/custom.xml", CUSTOM),
    )


def test_a_docx_loses_its_authors_commenters_company_and_template_path() -> None:
    original = docx()

    result, out = clean(original)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, "docx")
    before, after = entries(original), entries(out)
    assert list(after) == list(before)
    leaks = {
        name for name, content in after.items() if b"MARKER" in content and name != "word/media/image1.png"
    }
    assert leaks == set()
    assert after["word/media/image1.png"] == IMAGE  # not XML: not touched
    for untouched in ("[Content_Types].xml", "_rels/.rels", "word/"):
        assert after[untouched] == before[untouched]
    document = after["word/document.xml"].decode()
    assert "BODY-TEXT &amp; a title " in document
    assert 'w:author="Author"' in document
    assert 'w:date="2024-03-01T09:30:00Z"' in document
    # Office refuses a part whose mc:Ignorable names an undeclared prefix.
    assert 'xmlns:wp14="' in document and 'mc:Ignorable="w14 wp14"' in document
    assert '<?mso-application progid="Word.Document"?>' in document
    comments = after["word/comments.xml"].decode()
    assert 'w:author="Author"' in comments and 'w:initials="A"' in comments and "COMMENT-TEXT" in comments
    assert 'w15:userId="Author"' in after["word/people.xml"].decode()
    assert 'Target="Normal.dotm"' in after["word/_rels/settings.xml.rels"].decode()
    assert 'Target="media/image1.png"' in after["word/_rels/settings.xml.rels"].decode()
    core = after["docProps/core.xml"].decode()
    assert "2024-03-01" not in core and "revision" not in core and "creator" not in core
    assert "<dc:language>en-GB</dc:language>" in core
    assert "<Application>Microsoft Office Word</Application>" in after["docProps/app.xml"].decode()
    assert "property" not in after["docProps/custom.xml"].decode()
    with zipfile.ZipFile(io.BytesIO(out)) as archive:
        assert archive.testzip() is None
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_a_cleaned_docx_has_nothing_left_to_find() -> None:
    _, once = clean(docx())

    result, twice = clean(once)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "docx")
    assert entries(twice) == entries(once)


def test_a_docx_without_metadata_keeps_every_part_byte_for_byte() -> None:
    # "title" in the text makes the part worth a look; nothing in it is metadata.
    document = (
        f'{DECLARATION}<w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>A title</w:t></w:r></w:p></w:body>'
        "</w:document>"
    )
    plain = package(
        ("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", PACKAGE_RELS), ("word/document.xml", document)
    )

    result, out = clean(plain)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "docx")
    assert entries(out) == entries(plain)


SHEET_NOTES = (
    '<comments xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><authors>'
    "<author>MARKER-NOTE-AUTHOR</author><author>Author</author></authors><commentList>"
    '<comment ref="A1" authorId="0"><text><r><t>NOTE-TEXT</t></r></text></comment></commentList></comments>'
)
SHEET_PERSONS = (
    '<personList xmlns="http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments">'
    '<person displayName="MARKER-PERSON" id="{1}" userId="MARKER-USER" providerId="AD"/></personList>'
)
SLIDE_AUTHORS = (
    '<p:cmAuthorLst xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
    '<p:cmAuthor id="1" name="MARKER-SLIDES" initials="MS" lastIdx="1" clrIdx="0"/></p:cmAuthorLst>'
)
MODERN_AUTHORS = (
    '<p188:authorLst xmlns:p188="http://schemas.microsoft.com/office/powerpoint/2018/8/main">'
    '<p188:author id="{1}" name="MARKER-AUTHOR" initials="MA" userId="MARKER-USER" providerId="AD"/>'
    "</p188:authorLst>"
)


@pytest.mark.parametrize(
    ("kind", "parts"),
    [
        ("xlsx", [("xl/comments1.xml", SHEET_NOTES), ("xl/persons/person.xml", SHEET_PERSONS)]),
        ("pptx", [("ppt/commentAuthors.xml", SLIDE_AUTHORS), ("ppt/authors.xml", MODERN_AUTHORS)]),
    ],
)
def test_spreadsheet_and_slide_commenters_are_anonymised(kind: str, parts: list[tuple[str, str]]) -> None:
    original = package(("[Content_Types].xml", CONTENT_TYPES), *parts, ("docProps/app.xml", APP))

    result, out = clean(original)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, kind)
    after = entries(out)
    assert list(after) == list(entries(original))
    assert not any(b"MARKER" in content for content in after.values())
    assert all(b"Author" in after[name] for name, _ in parts)


def test_an_odd_office_package_and_a_plain_zip_are_not_cleaned() -> None:
    visio_like = package(("[Content_Types].xml", CONTENT_TYPES), ("visio/document.xml", "<x/>"))
    plain_zip = package(("notes.txt", "hello"))

    assert_stored_as_is(visio_like, CleanStatus.UNSUPPORTED, "")
    assert_stored_as_is(plain_zip, CleanStatus.UNSUPPORTED, "")


def test_a_broken_zip_is_stored_as_it_came() -> None:
    assert_stored_as_is(b"PK\x03\x04" + b"\x00" * 40, CleanStatus.FAILED, "")


def test_a_zip_bomb_is_refused() -> None:
    bomb = package(
        ("[Content_Types].xml", "<Types/>"),
        ("word/document.xml", "<w:document/>"),
        ("word/media/zeros.bin", b"\x00" * 11_000),
    )
    assert len(bomb) <= 1_000  # small enough to be cleaned, but expands 11 times the limit

    assert_stored_as_is(bomb, CleanStatus.OVER_BOUNDS, "docx", max_bytes=1_000)


def test_a_docx_whose_mimetype_entry_inflates_to_300_mib_is_stored_as_sent() -> None:
    bomb = docx_with_zeros("mimetype", 300)
    assert len(bomb) < 400_000

    assert_stored_as_is(bomb, CleanStatus.OVER_BOUNDS, "docx")


def test_a_package_that_inflates_a_hundred_times_its_size_is_refused_whatever_the_limit() -> None:
    bomb = docx_with_zeros("word/media/zeros.bin", 64)
    upload = ReadOnce(bomb)

    result = cleaning.clean(cast(IO[bytes], upload), max_bytes=1024 * MIB)

    assert result.status == CleanStatus.OVER_BOUNDS
    assert cleaning.ZIP_RATIO * len(bomb) < 64 * MIB
    assert read_all(result.stream) == bomb


@pytest.mark.parametrize("name", ["mimetype", "word/media/scan.bin"])
def test_a_stored_entry_is_compressed_again_so_the_copy_is_about_the_size_sent(name: str) -> None:
    sent = docx_with_zeros(name, 1, compression=zipfile.ZIP_STORED)
    assert len(sent) > MIB

    result, out = clean(sent)

    assert (result.status, result.kind) == (CleanStatus.NOTHING_FOUND, "docx")
    assert len(out) < 10_000
    assert entries(out) == entries(sent)


def test_a_package_with_too_many_entries_is_refused() -> None:
    names = [f"word/media/{index}.bin" for index in range(cleaning.MAX_ZIP_ENTRIES)]
    crowded = package(("[Content_Types].xml", CONTENT_TYPES), *((name, b"") for name in names))

    assert_stored_as_is(crowded, CleanStatus.OVER_BOUNDS, "docx")


def test_a_package_with_two_entries_of_one_name_is_refused() -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = package(
            ("[Content_Types].xml", CONTENT_TYPES),
            ("word/document.xml", "<w:document/>"),
            ("docProps/core.xml", CORE),
            ("docProps/core.xml", "<x/>"),
        )

    assert_stored_as_is(twice, CleanStatus.FAILED, "docx")


def test_an_xml_part_over_the_limit_is_refused() -> None:
    large = package(
        ("[Content_Types].xml", "<Types/>"), ("word/document.xml", f"<w:document>{'x' * 2_000}</w:document>")
    )

    assert_stored_as_is(large, CleanStatus.OVER_BOUNDS, "docx", max_bytes=1_000)


def test_xml_nested_as_deep_as_the_bound_is_cleaned_and_deeper_is_refused() -> None:
    at_bound = docx_nested(cleaning.MAX_XML_DEPTH - 2)  # under the document and the change

    result, _ = clean(at_bound)

    assert result.status == CleanStatus.CLEANED
    assert_stored_as_is(docx_nested(cleaning.MAX_XML_DEPTH - 1), CleanStatus.OVER_BOUNDS, "docx")


def test_nesting_inside_a_removed_element_counts_too() -> None:
    nested = "<dc:title>" + "<x>" * cleaning.MAX_XML_DEPTH + "</x>" * cleaning.MAX_XML_DEPTH + "</dc:title>"
    core = CORE.replace("<dc:title>MARKER-TITLE</dc:title>", nested)

    deep = package(
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/document.xml", "<w:document/>"),
        ("docProps/core.xml", core),
    )

    assert_stored_as_is(deep, CleanStatus.OVER_BOUNDS, "docx")


def test_four_million_nested_elements_padded_to_pass_the_ratio_are_refused() -> None:
    bomb = docx_nested(4_000_000, padding=400_000)
    assert cleaning.ZIP_RATIO * len(bomb) > 28_000_000

    assert_stored_as_is(bomb, CleanStatus.OVER_BOUNDS, "docx")


@pytest.mark.parametrize(
    "core",
    [
        '<!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><dc:creator>&lol2;</dc:creator>',
        '<!ENTITY x SYSTEM "file:///etc/passwd"><dc:creator>x</dc:creator>',
        "<dc:creator>unclosed</dc:crea",
        "<dc:creator>UTF-16</dc:creator>".encode("utf-16").decode("latin-1"),
    ],
    ids=["doctype", "entity", "malformed", "utf-16"],
)
def test_unsafe_or_unreadable_xml_is_refused(core: str) -> None:
    unsafe = package(
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/document.xml", "<w:document/>"),
        ("docProps/core.xml", core.encode("latin-1")),
    )

    assert_stored_as_is(unsafe, CleanStatus.FAILED, "docx")


# --- OpenDocument ------------------------------------------------------------------------------------

ODF = 'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
ODF_META = 'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"'
DC = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
META = (
    f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta {ODF} {ODF_META} {DC} '
    'xmlns:xlink="http://www.w3.org/1999/xlink" office:version="1.3"><office:meta>'
    "<meta:initial-creator>MARKER-INITIAL</meta:initial-creator><dc:creator>MARKER-CREATOR</dc:creator>"
    "<meta:creation-date>2024-03-01T09:30:00</meta:creation-date><dc:date>2024-03-02T10:00:00</dc:date>"
    "<meta:printed-by>MARKER-PRINTER</meta:printed-by><dc:title>MARKER-TITLE</dc:title>"
    '<meta:user-defined meta:name="Department">MARKER-DEPARTMENT</meta:user-defined>'
    "<meta:generator>LibreOffice</meta:generator><meta:editing-cycles>4</meta:editing-cycles>"
    "</office:meta></office:document-meta>"
)
ODF_CONTENT = (
    f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF} {ODF_META} {DC} '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
    "<text:p>BODY-TEXT<office:annotation><dc:creator>MARKER-ANNOTATOR</dc:creator>"
    "<meta:creator-initials>MA</meta:creator-initials><dc:date>2024-03-01T09:30:00</dc:date>"
    "<text:p>NOTE-TEXT</text:p></office:annotation></text:p></office:text></office:body>"
    "</office:document-content>"
)
MANIFEST = (
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
    '<manifest:file-entry manifest:full-path="/" '
    'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
    "</manifest:manifest>"
)


def odf(mimetype: str, meta: str = META) -> bytes:
    return package(
        ("mimetype", mimetype),
        ("META-INF/manifest.xml", MANIFEST),
        ("content.xml", ODF_CONTENT),
        ("meta.xml", meta),
    )


@pytest.mark.parametrize(
    ("kind", "mimetype"),
    [
        ("odt", "application/vnd.oasis.opendocument.text"),
        ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
        ("odp", "application/vnd.oasis.opendocument.presentation"),
    ],
)
def test_an_opendocument_file_loses_its_creators_and_dates(kind: str, mimetype: str) -> None:
    original = odf(mimetype)

    result, out = clean(original)

    assert (result.status, result.kind) == (CleanStatus.CLEANED, kind)
    after = entries(out)
    assert list(after) == list(entries(original))
    assert not any(b"MARKER" in content for content in after.values())
    with zipfile.ZipFile(io.BytesIO(out)) as archive:
        first = archive.infolist()[0]
        assert (first.filename, first.compress_type, first.extra) == ("mimetype", zipfile.ZIP_STORED, b"")
        assert archive.read(first) == mimetype.encode()
    meta = after["meta.xml"].decode()
    assert "2024-03" not in meta
    assert "<meta:generator>LibreOffice</meta:generator>" in meta and "<meta:editing-cycles>4" in meta
    content = after["content.xml"].decode()
    assert "BODY-TEXT" in content and "NOTE-TEXT" in content
    assert (
        "<dc:creator>Author</dc:creator>" in content
        and "<meta:creator-initials>A</meta:creator-initials>" in content
    )
    assert "<dc:date>2024-03-01T09:30:00</dc:date>" in content  # required there
    assert after["META-INF/manifest.xml"] == MANIFEST.encode()


def test_an_empty_element_that_names_a_path_is_still_removed() -> None:
    meta = (
        f'<office:document-meta {ODF} {ODF_META} xmlns:xlink="http://www.w3.org/1999/xlink"><office:meta>'
        '<meta:template xlink:href="file:///home/MARKER-HOME/letter.ott"/></office:meta></office:document-meta>'
    )

    result, out = clean(odf("application/vnd.oasis.opendocument.text", meta))

    assert result.status == CleanStatus.CLEANED
    assert b"MARKER-HOME" not in entries(out)["meta.xml"]


def test_another_opendocument_type_is_not_cleaned() -> None:
    drawing = odf("application/vnd.oasis.opendocument.graphics")

    assert_stored_as_is(drawing, CleanStatus.UNSUPPORTED, "")


# --- what is stored as it came ---------------------------------------------------------------------


def test_keep_original_returns_the_stream_untouched() -> None:
    upload = ReadOnce(photo_with_exif())

    result = cleaning.clean(cast(IO[bytes], upload), keep_original=True)

    assert (result.status, result.kind) == (CleanStatus.KEPT, "")
    assert upload.position == 0
    assert read_all(result.stream) == photo_with_exif()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64,
        b"\xd0\xcf\x11\xe0" * 8,
    ],
    ids=["empty", "text", "mp4", "old-office"],
)
def test_an_unknown_type_is_stored_as_it_came(data: bytes) -> None:
    assert_stored_as_is(data, CleanStatus.UNSUPPORTED, "")


@pytest.mark.parametrize(("make", "kind"), [(photo_with_exif, "jpeg"), (docx, "")])
def test_a_file_over_the_limit_comes_back_whole_and_only_the_prefix_was_read(make: Any, kind: str) -> None:
    data = make()
    upload = ReadOnce(data)

    result = cleaning.clean(cast(IO[bytes], upload), max_bytes=100)

    assert (result.status, result.kind) == (CleanStatus.TOO_LARGE, kind)
    assert upload.position == 101
    assert read_all(result.stream, piece=7) == data


def test_a_file_exactly_at_the_limit_is_cleaned() -> None:
    photo = photo_with_exif()

    result, _ = clean(photo, max_bytes=len(photo))

    assert result.status == CleanStatus.CLEANED


# --- warnings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    [
        "photo.jpg",
        "Scan.JPEG",
        "report.docx",
        "minutes.pdf",
        "C:\\fakepath\\rota.xlsx",
        "notes.odt",
        "list.txt",
    ],
)
def test_no_warning_for_a_type_that_is_cleaned(filename: str) -> None:
    assert cleaning.warning_for(filename) is None


@pytest.mark.parametrize(
    ("filename", "words"),
    [
        ("clip.mp4", "recorded"),
        ("C:\\fakepath\\CLIP.MOV", "recorded"),
        ("IMG_0001.HEIC", "taken"),
        ("letter.doc", "author"),
        ("evidence.zip", "compressed"),
        ("forwarded.eml", "sender"),
        ("drawing.svg", "cannot remove"),
        ("no-extension", "cannot remove"),
    ],
)
def test_a_warning_for_a_type_that_is_not_cleaned(filename: str, words: str) -> None:
    warning = cleaning.warning_for(filename)

    assert warning is not None
    assert words in warning
    assert "stored exactly as you send it" in warning


def test_a_file_no_cleaner_reads_is_passed_on_without_being_held_in_memory() -> None:
    """A video is not read ahead up to the cleaning limit: only its first kilobyte, to know its type."""
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(50_000)
    upload = ReadOnce(data)

    result = cleaning.clean(cast(IO[bytes], upload), max_bytes=40_000)

    assert (result.status, result.kind) == (CleanStatus.UNSUPPORTED, "")
    assert upload.position == 1024
    assert read_all(result.stream, piece=999) == data
