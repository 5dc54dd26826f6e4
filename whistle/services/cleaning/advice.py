"""What to tell a reporter, before they send a file, about the hidden details it may carry."""

from __future__ import annotations

from pathlib import PurePosixPath

_CLEANABLE = frozenset(
    {
        *(".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".gif", ".pdf"),
        *(".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".odt", ".ods", ".odp"),
        # Plain text has no hidden details to remove.
        *(".txt", ".csv"),
    }
)
_STORED_AS_IS = "It will be stored exactly as you send it."
_PHOTO = (
    "Photos in this format can carry the phone or camera model and the time and place they were "
    f"taken, and we cannot remove that. {_STORED_AS_IS} To be safer, convert it to JPEG first, or "
    "take a screenshot of it and send the screenshot."
)
_RECORDING = (
    "Videos and sound recordings can carry the phone or camera model and the time and place they "
    f"were recorded, and we cannot remove that. {_STORED_AS_IS}"
)
_OLD_DOCUMENT = (
    "Documents in this format keep the author's name, the organisation and other hidden details, and "
    f"we cannot remove them. {_STORED_AS_IS} To be safer, save it as .docx, .xlsx, .pptx or PDF first "
    "and send that copy."
)
_ARCHIVE = (
    "We cannot look inside compressed folders to remove hidden details from the files in them. "
    f"{_STORED_AS_IS} To be safer, send the files one by one."
)
_EMAIL = (
    "Saved emails carry the names and addresses of the sender and recipients and details of the "
    f"mail servers they passed through, and we cannot remove them. {_STORED_AS_IS} To be safer, "
    "copy the parts that matter into your report instead."
)
_OTHER = (
    "We cannot remove hidden details from this type of file, such as the name of the person who made "
    f"it or the device it was made on. {_STORED_AS_IS} If that could identify you, convert it first: "
    "for example, save a document as PDF, or take a screenshot."
)
_WARNINGS = {
    **dict.fromkeys(
        (".heic", ".heif", ".avif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".raf"), _PHOTO
    ),
    **dict.fromkeys((".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".wmv", ".mpg"), _RECORDING),
    **dict.fromkeys((".mp3", ".m4a", ".wav", ".aac", ".ogg", ".opus", ".amr", ".flac", ".wma"), _RECORDING),
    **dict.fromkeys(
        (".doc", ".dot", ".xls", ".ppt", ".rtf", ".pages", ".numbers", ".key", ".odg"), _OLD_DOCUMENT
    ),
    **dict.fromkeys((".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz"), _ARCHIVE),
    **dict.fromkeys((".eml", ".msg"), _EMAIL),
}


def warning_for(filename: str) -> str | None:
    """A plain-English warning for a file whose type (by its name) cannot be cleaned, else None.

    This judges by name only, to warn before anything is sent; the status that
    `clean` returns is what happened to the bytes.
    """
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix in _CLEANABLE:
        return None
    return _WARNINGS.get(suffix, _OTHER)
