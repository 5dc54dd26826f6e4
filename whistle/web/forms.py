"""One form per screen. Forms check shape (lengths, choices, no NUL bytes); services check rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto
from werkzeug.datastructures import CombinedMultiDict, MultiDict
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    FileField,
    HiddenField,
    IntegerField,
    MultipleFileField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from whistle.models import ReportStatus
from whistle.services.cases import OUTCOME_LABELS, PRIORITY_LABELS, RISK_LABELS
from whistle.services.junk import MOST_AT_ONCE
from whistle.services.reports import CATEGORIES, IMMEDIATE_RISK, RAISED_BEFORE, STATUS_FOR_OFFICER

TEXT_LIMIT = 20_000
SHORT_LIMIT = 2_000
#: The names of files not kept when a form is sent back: how many, and how long each, at most.
MAX_FILE_NAMES = 100
FILE_NAME_LIMIT = 255


class WhistleForm(FlaskForm):
    """Every form reads the posted form fields, and files only under its own file fields.

    Flask-WTF would also hand a form a JSON body, or a file posted under a text
    field's name (even under ``csrf_token``); neither is ever what a page sends.
    """

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            if formdata is not _Auto:
                return formdata
            if not form.is_submitted():
                return None
            file_fields = {field.name for field in form if isinstance(field, FileField)}
            files = [(key, value) for key, value in request.files.items(multi=True) if key in file_fields]
            return CombinedMultiDict((MultiDict(files), request.form)) if files else request.form


def _choices(labels: Mapping[Any, str]) -> list[SelectChoice]:
    return [SelectChoice(str(value), label) for value, label in labels.items()]


def no_nul(_form: FlaskForm, field: Field) -> None:
    values = field.data if isinstance(field.data, list) else [field.data]
    if any(isinstance(value, str) and "\x00" in value for value in values):
        raise ValidationError(
            "This contains a character that cannot be accepted (a NUL byte). Please remove it."
        )


class HiddenListField(Field):
    """Values carried in hidden inputs of one name, one input each; they come back as a list."""

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any):
        super().__init__(label, validators, **kwargs)
        self.data: list[str] = []

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = list(valuelist)

    def process_data(self, value: Any) -> None:
        self.data = list(value or [])


def file_names(_form: FlaskForm, field: Field) -> None:
    if len(field.data) > MAX_FILE_NAMES or any(len(name) > FILE_NAME_LIMIT for name in field.data):
        raise ValidationError("Choose your files again.")


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


class SendsFiles(WhistleForm):
    """A form with files. Files are never kept when its page is sent back, so their names are:
    the page names them, to be chosen again or left out on purpose."""

    #: Files chosen on an earlier sending of this form, which were not kept (never in clear).
    dropped_files = HiddenListField(validators=[file_names, no_nul])
    send_without_files = BooleanField("Send without these files")


class ReportForm(SendsFiles):
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
    #: One token per form, so that the same form sent twice makes one report. (A form served
    #: before tokens existed has none; it is taken as it always was.)
    form_token = HiddenField(validators=[Optional(), Length(max=64), no_nul])
    send_without_files = BooleanField("Send my report without these files")

    def set_categories(self, labels: Mapping[str, str]) -> None:
        self.category.choices = _choices(labels)


def draft_field() -> TextAreaField:
    """A message written before the visit ended, carried on the sign-in page (and only there)
    so that it can be sent after signing in again."""
    return TextAreaField(
        "Your message, not sent yet",
        validators=[
            Optional(),
            Length(max=TEXT_LIMIT, message=f"Please keep this under {TEXT_LIMIT:,} characters."),
            no_nul,
        ],
    )


class ReceiptForm(WhistleForm):
    receipt = StringField(
        "Your receipt code",
        validators=[
            DataRequired("Enter your receipt code."),
            Length(max=64, message="That is not a receipt code."),
            no_nul,
        ],
    )
    draft = draft_field()


class ReporterReplyForm(SendsFiles):
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


class LoginForm(WhistleForm):
    email = EmailField(
        "Email address", validators=[DataRequired("Enter your email address."), Length(max=254), no_nul]
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=1024), no_nul]
    )
    draft = draft_field()
    #: Where the draft goes once logged in: ``<case public id>/messages`` or ``.../notes``.
    draft_for = HiddenField(validators=[Optional(), Regexp(r"^[0-9a-f]{32}/(messages|notes)$")])


class OfficerReplyForm(WhistleForm):
    body = TextAreaField(
        "Reply to the reporter",
        validators=[
            DataRequired("Write a reply first."),
            Length(max=TEXT_LIMIT, message=f"Please keep this under {TEXT_LIMIT:,} characters."),
            no_nul,
        ],
    )
    is_feedback = BooleanField(
        "This reply tells the reporter what has been done (it stops the feedback clock)"
    )


class StatusForm(WhistleForm):
    status = SelectField(
        "Status",
        choices=[
            SelectChoice(status.value, STATUS_FOR_OFFICER[status])
            for status in ReportStatus
            if status is not ReportStatus.CLOSED
        ],
        validators=[InputRequired()],
    )


class CloseForm(WhistleForm):
    outcome = SelectField("Outcome", choices=_choices(OUTCOME_LABELS), validators=[InputRequired()])
    summary = TextAreaField(
        "Closing summary",
        validators=[
            DataRequired("Write a closing summary."),
            Length(max=TEXT_LIMIT, message=f"Please keep this under {TEXT_LIMIT:,} characters."),
            no_nul,
        ],
    )
    share = BooleanField("Share this summary with the reporter as feedback")


class PriorityForm(WhistleForm):
    priority = SelectField("Priority", choices=_choices(PRIORITY_LABELS), validators=[InputRequired()])


class AssignForm(WhistleForm):
    # The service checks that the officer can read the case.
    assignee = SelectField("Lead officer", choices=[], validate_choice=False)


class TriageForm(WhistleForm):
    category = StringField(
        "Category (your own)",
        validators=[Optional(), Length(max=60, message="Use at most 60 characters."), no_nul],
    )
    risk = SelectField("Risk of detriment to the reporter", choices=_choices(RISK_LABELS))
    protective_actions = TextAreaField(
        "Protective actions",
        validators=[
            Optional(),
            Length(max=SHORT_LIMIT, message=f"Please keep this under {SHORT_LIMIT:,} characters."),
            no_nul,
        ],
    )


class NoteForm(WhistleForm):
    """Prefixed: its field would otherwise share an id with the reply's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="note", **kwargs)

    body = TextAreaField(
        "Internal note (never shown to the reporter)",
        validators=[
            DataRequired("Write the note first."),
            Length(max=TEXT_LIMIT, message=f"Please keep this under {TEXT_LIMIT:,} characters."),
            no_nul,
        ],
    )


class GrantForm(WhistleForm):
    officer = SelectField("Give access to", choices=[], validate_choice=False)


class RevokeForm(WhistleForm):
    officer = StringField(validators=[DataRequired(), Length(max=32), no_nul])


class SetupForm(WhistleForm):
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


class InviteForm(WhistleForm):
    display_name = StringField(
        "Name", validators=[DataRequired("Enter the officer's name."), Length(max=100), no_nul]
    )
    email = EmailField(
        "Email address",
        validators=[
            DataRequired("Enter an email address."),
            Email("Enter a valid email address."),
            Length(max=254),
            no_nul,
        ],
    )
    is_admin = BooleanField("Administrator (can manage officers and settings)")


class OfficerStatusForm(WhistleForm):
    officer = StringField(validators=[DataRequired(), Length(max=32), no_nul])


class SettingsForm(WhistleForm):
    organisation_name = StringField(
        "Organisation name",
        validators=[DataRequired("Enter the organisation's name."), Length(max=120), no_nul],
    )
    landing_text = TextAreaField(
        "Text on the start page (Markdown)", validators=[Optional(), Length(max=TEXT_LIMIT), no_nul]
    )
    guidance_text = TextAreaField(
        "Guidance for reporters (Markdown)", validators=[Optional(), Length(max=TEXT_LIMIT), no_nul]
    )
    report_categories = TextAreaField(
        "Kinds of concern on the report form, one per line",
        validators=[
            Optional(),
            Length(max=4000, message="Please keep the list under 4,000 characters."),
            no_nul,
        ],
    )
    acknowledge_days = IntegerField(
        "Days to acknowledge a report",
        validators=[InputRequired("Enter a number of days."), NumberRange(1, 30)],
    )
    feedback_months = IntegerField(
        "Months to give feedback after acknowledging",
        validators=[InputRequired("Enter a number of months."), NumberRange(1, 12)],
    )
    retention_months = IntegerField(
        "Months a closed case is kept before it is deleted",
        validators=[InputRequired("Enter a number of months."), NumberRange(1, 120)],
    )
    require_two_factor = BooleanField("Every officer must use two-factor login")


def _code_field(label: str) -> StringField:
    return StringField(
        label,
        validators=[
            DataRequired("Enter the 6-digit code from your authenticator app."),
            Length(max=16, message="Enter the 6-digit code from your authenticator app."),
            no_nul,
        ],
    )


class CodeForm(WhistleForm):
    """The second step of a login."""

    code = _code_field("Code from your authenticator app")


class EnrolTwoFactorForm(WhistleForm):
    code = _code_field("Code shown by the app")
    #: Asked only when two-factor login is on already and is being moved to a new app.
    current = PasswordField(
        "Your password, or a code from the app you use now",
        validators=[Optional(), Length(max=1024, message="Use at most 1,024 characters."), no_nul],
    )


def _new_password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[
            DataRequired("Choose a password."),
            Length(min=12, max=1024, message="Use 12 to 1,024 characters."),
            no_nul,
        ],
    )


class ResetPasswordForm(WhistleForm):
    email = EmailField(
        "Email address", validators=[DataRequired("Enter your email address."), Length(max=254), no_nul]
    )
    recovery_key = StringField(
        "Recovery key",
        validators=[
            DataRequired("Enter your recovery key."),
            Length(max=100, message="That is not a recovery key."),
            no_nul,
        ],
    )
    password = _new_password_field("New password (at least 12 characters)")


class WelcomeForm(WhistleForm):
    password = _new_password_field("Choose a password (at least 12 characters)")


class LegalHoldForm(WhistleForm):
    """Put a case on legal hold ("on") or release it ("off"): a button each, no toggle to race."""

    hold = RadioField(
        choices=[SelectChoice("on", "On legal hold"), SelectChoice("off", "Not on legal hold")],
        validators=[InputRequired()],
    )


class LabelsForm(WhistleForm):
    """Prefixed: its fields would otherwise share ids with other forms on the case page."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="labels", **kwargs)

    names = MultiCheckboxField("Labels on this case")
    new_label = StringField(
        "New label", validators=[Optional(), Length(max=40, message="Use at most 40 characters."), no_nul]
    )


class TickedCasesField(MultiCheckboxField):
    """Cases ticked in a list: any public ids, checked by :func:`_public_ids` and by the service."""

    def pre_validate(self, form: FlaskForm) -> None:
        return None


def _public_ids(_form: FlaskForm, field: Field) -> None:
    if len(field.data) > MOST_AT_ONCE or not all(
        isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) for value in field.data
    ):
        raise ValidationError(f"Tick at most {MOST_AT_ONCE} cases from the list.")


class JunkForm(WhistleForm):
    """Cases ticked on the case list, to close as junk in one go."""

    reports = TickedCasesField(
        "Cases to close as junk",
        validators=[InputRequired("Tick the cases to close as junk first."), no_nul, _public_ids],
    )
