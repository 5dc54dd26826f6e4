"""One form per screen. Forms check shape (lengths, choices, no NUL bytes); services check rules."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    MultipleFileField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from whistle.models import ReportStatus
from whistle.services.reports import CATEGORIES, IMMEDIATE_RISK, RAISED_BEFORE, STATUS_FOR_OFFICER

TEXT_LIMIT = 20_000
SHORT_LIMIT = 2_000


def _choices(labels: dict[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


def no_nul(_form: FlaskForm, field: Field) -> None:
    values = field.data if isinstance(field.data, list) else [field.data]
    if any(isinstance(value, str) and "\x00" in value for value in values):
        raise ValidationError(
            "This contains a character that cannot be accepted (a NUL byte). Please remove it."
        )


class MultiCheckboxField(Field):
    """A list of checkboxes; the chosen values come back as a list."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, label: str | None = None, validators: Any = None, choices: Any = None, **kwargs: Any):
        super().__init__(label, validators, **kwargs)
        self.choices: list[tuple[str, str]] = list(choices or [])
        self.data: list[str] = []

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = list(valuelist)

    def process_data(self, value: Any) -> None:
        self.data = list(value or [])

    def pre_validate(self, form: FlaskForm) -> None:
        allowed = {value for value, _label in self.choices}
        if any(value not in allowed for value in self.data):
            raise ValidationError("Choose from the officers listed.")


class ReportForm(FlaskForm):
    category = RadioField(
        "What is your concern about?",
        choices=_choices(CATEGORIES),
        validators=[InputRequired("Choose what your concern is about.")],
    )
    what_happened = TextAreaField(
        "What happened?",
        validators=[
            DataRequired("Tell us what happened."),
            Length(max=TEXT_LIMIT, message=f"Please keep this under {TEXT_LIMIT:,} characters."),
            no_nul,
        ],
    )
    when_where = TextAreaField(
        "When and where did it happen? (optional)",
        validators=[
            Optional(),
            Length(max=SHORT_LIMIT, message=f"Please keep this under {SHORT_LIMIT:,} characters."),
            no_nul,
        ],
    )
    immediate_risk = RadioField(
        "Could a child or adult be at immediate risk of harm?",
        choices=_choices(IMMEDIATE_RISK),
        validators=[InputRequired("Tell us whether someone may be at immediate risk.")],
    )
    raised_before = RadioField(
        "Have you raised this concern before?",
        choices=_choices(RAISED_BEFORE),
        validators=[InputRequired("Tell us whether you have raised this before.")],
    )
    raised_before_result = TextAreaField(
        "If you have, with whom, and what happened? (optional)",
        validators=[
            Optional(),
            Length(max=SHORT_LIMIT, message=f"Please keep this under {SHORT_LIMIT:,} characters."),
            no_nul,
        ],
    )
    attachments = MultipleFileField("Files (optional)")
    keep_original = BooleanField("Keep my files exactly as they are, hidden details included")
    excluded_officers = MultiCheckboxField("Officers who should not see this report (optional)")
    emergency_seen = BooleanField()


class ReceiptForm(FlaskForm):
    receipt = StringField(
        "Your receipt code",
        validators=[
            DataRequired("Enter your receipt code."),
            Length(max=64, message="That is not a receipt code."),
            no_nul,
        ],
    )


class ReporterReplyForm(FlaskForm):
    body = TextAreaField(
        "Your message",
        validators=[
            Optional(),
            Length(max=TEXT_LIMIT, message=f"Please keep this under {TEXT_LIMIT:,} characters."),
            no_nul,
        ],
    )
    attachments = MultipleFileField("Add files (optional)")
    keep_original = BooleanField("Keep my files exactly as they are, hidden details included")


class LoginForm(FlaskForm):
    email = EmailField(
        "Email address", validators=[DataRequired("Enter your email address."), Length(max=254), no_nul]
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=1024), no_nul]
    )


class OfficerReplyForm(FlaskForm):
    body = TextAreaField(
        "Reply to the reporter",
        validators=[
            DataRequired("Write a reply first."),
            Length(max=TEXT_LIMIT, message=f"Please keep this under {TEXT_LIMIT:,} characters."),
            no_nul,
        ],
    )


class StatusForm(FlaskForm):
    status = SelectField(
        "Status",
        choices=[SelectChoice(status.value, STATUS_FOR_OFFICER[status]) for status in ReportStatus],
        validators=[InputRequired()],
    )


class SetupForm(FlaskForm):
    display_name = StringField(
        "Your name, as reporters and colleagues will see it",
        validators=[DataRequired("Enter your name."), Length(max=100), no_nul],
    )
    email = EmailField(
        "Email address",
        validators=[
            DataRequired("Enter your email address."),
            Email("Enter a valid email address."),
            Length(max=254),
            no_nul,
        ],
    )
    password = PasswordField(
        "Choose a password (at least 12 characters)",
        validators=[
            DataRequired("Choose a password."),
            Length(min=12, max=1024, message="Use 12 to 1,024 characters."),
            no_nul,
        ],
    )
