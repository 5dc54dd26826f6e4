"""Domain errors, named for what went wrong. The web layer maps them to pages."""


class WhistleError(Exception):
    """Base of every error a service raises on purpose."""


class ReceiptNotFound(WhistleError):
    """No report opens with this receipt: unknown, mistyped or deleted."""


class ReceiptTriedTooOften(WhistleError):
    """The right receipt of a report, tried more often than its limit allows."""

    def __init__(self, report: str) -> None:
        super().__init__()
        self.report = report


class ResetTriedTooOften(WhistleError):
    """Password resets for this officer tried more often than their limit allows."""

    def __init__(self, officer: str) -> None:
        super().__init__()
        self.officer = officer


class ReportNotFound(WhistleError):
    """The report does not exist, or this officer holds no key for it."""


class AttachmentNotFound(WhistleError):
    pass


class LoginFailed(WhistleError):
    """Unknown email, wrong password or a deactivated officer: one answer for all."""


class LoginDelayed(LoginFailed):
    """Wrong passwords were tried for this officer lately: a device they have not logged in
    from must wait before the next attempt."""

    def __init__(self, seconds: int) -> None:
        super().__init__()
        self.seconds = seconds


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


class AlreadySubmitted(WhistleError):
    """This report form was sent before (a reload of the receipt page): the report arrived then."""


class UploadRejected(WhistleError):
    """Too many files, or a file over the size limit."""


class ServerBusy(WhistleError):
    """Too many key derivations are running; try again shortly."""


class NeedsOutcome(WhistleError):
    """A case is closed with an outcome and a summary, not by a status change."""


class OfficerExcluded(WhistleError):
    """The reporter excluded this officer: they can never be given the case."""


class LastReader(WhistleError):
    """Removing this officer would leave no officer able to read the case."""


class InvalidSetting(WhistleError):
    pass


class WrongRecoveryKey(WhistleError):
    """The key given is not this organisation's recovery key."""


class CodeRefused(WhistleError):
    """A two-factor code that is wrong, or not six digits."""


class CodeReplayed(CodeRefused):
    """A two-factor code of a time step that was accepted already: never twice."""


class RecoveryFailed(WhistleError):
    """Unknown email, deactivated officer or a wrong recovery key: one answer for all."""


class InvitationUnavailable(WhistleError):
    """The link is unknown, used or expired, or its officer was deactivated."""


class NotConfirmed(WhistleError):
    """The officer's password, or a code from their current app, was needed and not given right."""


class NotAllowed(WhistleError):
    """The acting officer may not do this (not an administrator, or their own account)."""


class NotSeedable(WhistleError):
    """The instance holds reports that `whistle seed` did not make: demonstration cases go elsewhere."""


class UnknownLabel(WhistleError):
    """A label that no officer has defined."""
