"""Administrator-written Markdown, rendered and then cleaned with bleach.

The one place in Whistle where HTML is allowed through (``Markup``): the text
comes from administrators, and bleach keeps only a small set of harmless
tags, with links limited to http(s) and mailto. Everything a reporter writes
is plain text, escaped by Jinja, and never comes here.
"""

from __future__ import annotations

from functools import lru_cache

import bleach
import markdown as markdown_library
from markupsafe import Markup

ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "ul",
    "ol",
    "li",
    "a",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "code",
    "hr",
}
ALLOWED_ATTRIBUTES = {"a": ["href", "title"]}
ALLOWED_PROTOCOLS = {"http", "https", "mailto", "tel"}


@lru_cache(maxsize=64)
def render(text: str) -> Markup:
    """The text as cleaned HTML. Kept by text: the landing page shows the same text to every
    visitor, and a changed setting is a new text (Markup is immutable, so sharing it is safe)."""
    html = markdown_library.markdown(text or "", extensions=[], output_format="html")
    cleaned = bleach.clean(
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, protocols=ALLOWED_PROTOCOLS, strip=True
    )
    return Markup(cleaned)  # noqa: S704 - cleaned by bleach just above
