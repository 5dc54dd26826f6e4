"""Settings that administrators change in the app, stored in the database.

They override the instance file's values for the same names; every change is
audited. Values are JSON; each name has a type and a default here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import audit
from whistle.models import Setting
from whistle.services.context import Policy
from whistle.services.errors import InvalidSetting


@dataclass(frozen=True)
class Definition:
    label: str
    kind: type
    default: Any
    low: int = 0
    high: int = 0


DEFAULT_GUIDANCE = ""

DEFINITIONS: dict[str, Definition] = {
    "organisation_name": Definition("Organisation name", str, "Our organisation"),
    "landing_text": Definition("Text on the start page (Markdown)", str, ""),
    "guidance_text": Definition("Guidance for reporters (Markdown)", str, DEFAULT_GUIDANCE),
    "report_categories": Definition("Kinds of concern on the report form, one per line", str, ""),
    "acknowledge_days": Definition("Days to acknowledge a report", int, 7, 1, 30),
    "feedback_months": Definition("Months to give feedback after acknowledging", int, 3, 1, 12),
    "retention_months": Definition("Months a closed case is kept before deletion", int, 12, 1, 120),
    "require_two_factor": Definition("Every officer must use two-factor login", bool, False),
}
TEXT_LIMIT = 20_000


def load(db: Session, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every setting: the database's value, else the given default, else the built-in one."""
    values = {name: definition.default for name, definition in DEFINITIONS.items()}
    values.update({k: v for k, v in (defaults or {}).items() if k in DEFINITIONS})
    for row in db.scalars(select(Setting)):
        if row.name in DEFINITIONS:
            values[row.name] = json.loads(row.value)
    return values


def get(db: Session, name: str, default: Any = None) -> Any:
    row = db.get(Setting, name)
    if row is not None:
        return json.loads(row.value)
    return DEFINITIONS[name].default if default is None else default


def _checked(name: str, value: Any) -> Any:
    definition = DEFINITIONS.get(name)
    if definition is None:
        raise InvalidSetting(f"{name} is not a setting")
    if definition.kind is bool:
        return bool(value)
    if definition.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidSetting(f"{definition.label} must be a whole number.")
        if not definition.low <= value <= definition.high:
            low, high = definition.low, definition.high
            raise InvalidSetting(f"{definition.label} must be between {low} and {high}.")
        return value
    text = "" if value is None else str(value)
    if len(text) > TEXT_LIMIT or "\x00" in text:
        raise InvalidSetting(f"{definition.label} is too long or has a character that cannot be accepted.")
    return text


def change(db: Session, actor: str, values: dict[str, Any], now: dt.datetime) -> list[str]:
    """Store changed settings; return the names that changed. Audited, without the values."""
    current = load(db)
    changed = []
    for name, value in values.items():
        value = _checked(name, value)
        if current.get(name) == value:
            continue
        row = db.get(Setting, name) or Setting(name=name, value="null")
        row.value = json.dumps(value)
        db.add(row)
        changed.append(name)
        audit.record(db, "setting_changed", actor, now, detail=name)
    db.flush()
    return changed


MAX_CATEGORIES = 30
MAX_CATEGORY_CHARS = 120


def report_categories(values: dict[str, Any], built_in: dict[str, str]) -> dict[str, str]:
    """The kinds of concern a reporter chooses from: the administrators' list, else the built-in one.

    An administrator's category is its own value, so reports keep the words they
    were filed under even after the list changes.
    """
    lines = [" ".join(line.split()) for line in str(values.get("report_categories", "")).splitlines()]
    chosen = [line[:MAX_CATEGORY_CHARS] for line in lines if line][:MAX_CATEGORIES]
    return {line: line for line in chosen} if chosen else dict(built_in)


def policy(db: Session, base: Policy) -> Policy:
    """The organisation's policy with the periods administrators set."""
    values = load(db, {"acknowledge_days": base.acknowledge_days, "feedback_months": base.feedback_months})
    return Policy(
        max_files=base.max_files,
        max_files_per_case=base.max_files_per_case,
        max_file_bytes=base.max_file_bytes,
        max_clean_bytes=base.max_clean_bytes,
        acknowledge_days=values["acknowledge_days"],
        feedback_months=values["feedback_months"],
    )
