"""Domain errors, named for what went wrong. The web layer maps them to pages."""


class WhistleError(Exception):
    """Base of every error a service raises on purpose."""


class ReceiptNotFound(WhistleError):
    """No report opens with this receipt: unknown, mistyped or deleted."""


class ReportNotFound(WhistleError):
    """The report does not exist, or this officer holds no key for it."""


class AttachmentNotFound(WhistleError):
    pass


class LoginFailed(WhistleError):
    """Unknown email, wrong password or a deactivated officer: one answer for all."""


class OfficerExists(WhistleError):
    pass


class WeakPassword(WhistleError):
    pass


class SetupUnavailable(WhistleError):
    """The setup link is unknown, used, or the instance already has officers."""


class NobodyToRead(WhistleError):
    """The reporter excluded every officer, so no one could read the report."""


class UnknownOfficer(WhistleError):
    pass


class UploadRejected(WhistleError):
    """Too many files, or a file over the size limit."""


class ServerBusy(WhistleError):
    """Too many key derivations are running; try again shortly."""
