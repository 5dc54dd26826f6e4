"""The folders the portal runs from besides its code: templates, static files, migrations.

They live at the top of the source tree. A wheel carries them inside the package
(pyproject.toml maps them there when it is built); a source checkout, an editable
install included, has them at its top.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def folder(name: str) -> Path:
    """``templates``, ``static`` or ``migrations``: inside the installed package, or the checkout's."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else CHECKOUT / name
