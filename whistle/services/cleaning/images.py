"""Photos and pictures: only the pixels are encoded again (JPEG, PNG, WebP, TIFF, GIF)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageOps, ImageSequence
from PIL.GifImagePlugin import GifImageFile
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile
from PIL.TiffImagePlugin import TiffImageFile

from whistle.services.cleaning.outcome import BeyondBounds, Unsupported

#: All frames or pages of one image together, counted before any is decoded: a 48-megapixel
#: photo fits. Decoding takes 3 or 4 bytes a pixel, and each step of cleaning a copy.
MAX_PIXELS = 50_000_000

_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF", "gif": "GIF"}
#: What an encoder needs from `info` and identifies no one; everything else is dropped.
_KEPT_INFO = ("icc_profile", "dpi", "transparency", "duration", "loop")
#: `info` entries that hold metadata.
_METADATA_INFO = ("exif", "xmp", "photoshop", "comment", "XML:com.adobe.xmp")
#: JPEG segments that hold no metadata: the JFIF header, an ICC profile, Adobe's colour transform.
_PLAIN_JPEG_SEGMENTS = (("APP0", b"JFIF\x00"), ("APP2", b"ICC_PROFILE\x00"), ("APP14", b"Adobe"))
#: TIFF tags that say who, where, when or with what: names, device, software,
#: dates, XMP, IPTC, Photoshop data, the EXIF and GPS directories, Windows' XP* tags.
_TIFF_METADATA_TAGS = (
    *(269, 270, 271, 272, 285, 305, 306, 315, 316, 700, 33432, 33723, 34377, 34665, 34853, 37724),
    *range(40091, 40096),
)
#: SubIFDs and DNGVersion: a camera raw file, whose first picture is only a preview.
_CAMERA_RAW_TAGS = (330, 50706)
#: GIF application extensions that only say how to loop.
_LOOP_EXTENSIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def clean_image(data: bytes, kind: str) -> tuple[bytes, bool]:
    with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]]) as image:
        if isinstance(image, TiffImageFile) and any(tag in image.tag_v2 for tag in _CAMERA_RAW_TAGS):
            raise Unsupported  # re-encoding would keep the preview and lose the picture
        found = False
        frames: list[Image.Image] = []
        pixels = 0
        for frame in ImageSequence.Iterator(image):
            pixels += frame.width * frame.height
            if pixels > MAX_PIXELS:
                raise BeyondBounds("too many pixels")
            found |= _carries_metadata(frame)
            frames.append(_pixels_only(frame))
            if kind == "jpeg":
                break  # the main picture of an MPO file; the others are previews or depth maps
    out = io.BytesIO()
    frames[0].save(out, format=_PILLOW_FORMATS[kind], **_save_options(kind, frames))
    return out.getvalue(), found


def _carries_metadata(frame: Image.Image) -> bool:
    if any(key in frame.info for key in _METADATA_INFO):
        return True
    if isinstance(frame, JpegImageFile):
        return not all(_plain_segment(marker, body) for marker, body in frame.applist)
    if isinstance(frame, PngImageFile):
        return bool(frame.text)
    if isinstance(frame, TiffImageFile):
        return any(tag in frame.tag_v2 for tag in _TIFF_METADATA_TAGS)
    if isinstance(frame, GifImageFile):
        extension = frame.info.get("extension")
        return extension is not None and not bytes(extension[0]).startswith(_LOOP_EXTENSIONS)
    return False


def _plain_segment(marker: str, body: bytes) -> bool:
    return any(marker == name and body.startswith(start) for name, start in _PLAIN_JPEG_SEGMENTS)


def _pixels_only(frame: Image.Image) -> Image.Image:
    """A copy of the frame, upright, whose `info` keeps only what the encoder needs."""
    upright = ImageOps.exif_transpose(frame)
    upright.info = {key: frame.info[key] for key in _KEPT_INFO if key in frame.info}
    return upright


def _save_options(kind: str, frames: list[Image.Image]) -> dict[str, Any]:
    first = frames[0]
    options: dict[str, Any] = {key: first.info[key] for key in ("icc_profile", "dpi") if key in first.info}
    if kind in ("jpeg", "webp"):
        options["quality"] = 95
    elif kind == "tiff":
        options["compression"] = "tiff_adobe_deflate"
    if len(frames) > 1:
        options["save_all"] = True
        options["append_images"] = frames[1:]
        if kind != "tiff":
            options["duration"] = [frame.info.get("duration", 0) for frame in frames]
            if "loop" in first.info:
                options["loop"] = first.info["loop"]
    return options
