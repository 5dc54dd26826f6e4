"""Threat 2, guessing online: a wrong guess looks and costs exactly like any other.

A receipt that is unknown, mistyped by one character or malformed gets the
same page with the same status, so the answer tells a guesser nothing about
how near they were. None of them costs an Argon2id derivation: a report is
found by HMAC(pepper, receipt) before anything is derived, and with 80 random
bits in a receipt there is nothing near to find, so a quick "no" tells a guesser
nothing, and a flood of guesses costs the server next to nothing. Only the right
receipt costs one derivation, with the instance's parameters.

The officer's login gives an unknown email address, a wrong password and a
deactivated account the same page. Only a login for an active officer costs a
derivation: the time taken may tell that an email is an active officer's, which
the landing page, naming every officer, all but says (see docs/design.md).

Derivations are counted by wrapping ``whistle.crypto.derive_key`` in a counter
that still calls the real function: the code under test runs unchanged.

"Malformed" here means what passes the form's own shape checks (not blank, at
most 64 characters, no NUL byte); what fails them is told so before any lookup
and without a derivation, and that answer cannot depend on any report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import update

from tests.conftest import PASSWORD, OfficerAccount, csrf_token, runtime_of, submit_report
from whistle import crypto
from whistle.models import Officer

#: Headers that may differ between two answers of the same shape.
VARYING_HEADERS = {"Set-Cookie", "Content-Length"}


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[crypto.KdfParams]:
    """Every Argon2id derivation from now on, by its parameters; the real function still runs."""
    calls: list[crypto.KdfParams] = []
    real = crypto.derive_key

    def counting(secret: bytes, salt: bytes, params: crypto.KdfParams) -> bytes:
        calls.append(params)
        return real(secret, salt, params)

    monkeypatch.setattr(crypto, "derive_key", counting)
    return calls


@dataclass(frozen=True)
class Answer:
    label: str
    status: int
    page: str
    headers: tuple[tuple[str, str], ...]
    derivations: tuple[crypto.KdfParams, ...]


def without_nonces(page: str) -> str:
    """The page with what differs from one answer to the next taken out: the CSRF token,
    any nonce, and what the user typed (shown back to them in its field)."""

    def blank_value(tag: re.Match[str]) -> str:
        text = tag.group(0)
        if re.search(r'name="(?:csrf_token|receipt|email|password)"', text):
            text = re.sub(r'\svalue="[^"]*"', ' value=""', text)
        return text

    page = re.sub(r"<input\b[^>]*>", blank_value, page)
    return re.sub(r'\bnonce="[^"]*"', 'nonce=""', page)


def attempt(
    app: Flask, page: str, fields: dict[str, str], derivations: list[crypto.KdfParams], label: str
) -> Answer:
    """Open the form in a fresh browser, send it, and note what came back and what it cost."""
    client = app.test_client()
    form = client.get(page).get_data(as_text=True)
    derivations.clear()
    response = client.post(page, data={"csrf_token": csrf_token(form), **fields})
    headers = tuple(sorted((k, v) for k, v in response.headers.items() if k not in VARYING_HEADERS))
    return Answer(label, response.status_code, response.get_data(as_text=True), headers, tuple(derivations))


def assert_same_answer(answers: list[Answer]) -> None:
    first = answers[0]
    for other in answers[1:]:
        assert other.status == first.status, (first.label, other.label)
        assert without_nonces(other.page) == without_nonces(first.page), (first.label, other.label)
        assert other.headers == first.headers, (first.label, other.label)


def assert_derivations(answers: list[Answer], expected: tuple[crypto.KdfParams, ...]) -> None:
    for answer in answers:
        assert answer.derivations == expected, answer.label


def one_off(receipt: str, position: int) -> str:
    """The receipt with one character changed to another that is not read as the same."""
    code = list(crypto.normalise_receipt(receipt))
    alphabet = crypto.CROCKFORD
    code[position] = alphabet[(alphabet.index(code[position]) + 1) % len(alphabet)]
    return crypto.format_code("".join(code))


def swapped(receipt: str) -> str:
    """Two neighbouring characters that differ, swapped: the commonest slip when copying."""
    code = list(crypto.normalise_receipt(receipt))
    position = next(i for i in range(len(code) - 1) if code[i] != code[i + 1])
    code[position], code[position + 1] = code[position + 1], code[position]
    return crypto.format_code("".join(code))


# --- receipts ---------------------------------------------------------------------


def test_every_wrong_receipt_gets_the_same_answer_and_costs_no_derivation(app, alice, derivations):
    receipt = submit_report(app.test_client())
    normalised = crypto.normalise_receipt(receipt)
    params = runtime_of(app).keyring.kdf
    wrong = {
        "unknown": crypto.new_receipt(),
        "unknown, bare": crypto.normalise_receipt(crypto.new_receipt()),
        "one off, first character": one_off(receipt, 0),
        "one off, eighth character": one_off(receipt, 7),
        "one off, last character": one_off(receipt, 15),
        "two characters swapped": swapped(receipt),
        "one character short": normalised[:-1],
        "one character long": normalised + normalised[0],
        "a group too many": f"{receipt}-{receipt[:4]}",
        "four characters": normalised[:4],
        "U, which is not in the alphabet": crypto.format_code(normalised[:-1] + "U"),
        "not ASCII": "\u00c5" + receipt[1:],
        "underscores": receipt.replace("-", "_"),
        "quotes and SQL": "' OR '1'='1' --",
        "a single character": "x",
    }
    right = {"as given": receipt, "lower case and spaced": receipt.lower().replace("-", " ")}

    wrong_answers = [
        attempt(app, "/follow-up", {"receipt": typed}, derivations, label) for label, typed in wrong.items()
    ]
    right_answers = [
        attempt(app, "/follow-up", {"receipt": typed}, derivations, label) for label, typed in right.items()
    ]

    assert wrong_answers[0].status == 422
    assert "We could not find a report with that receipt code" in wrong_answers[0].page
    assert_same_answer(wrong_answers)
    assert [answer.status for answer in right_answers] == [303, 303]
    assert_derivations(wrong_answers, ())
    assert_derivations(right_answers, (params,))


def test_a_receipt_refused_for_its_shape_tells_nothing_of_any_report(app, alice, derivations):
    receipt = submit_report(app.test_client())
    padded = {
        "the right receipt, padded past 64 characters": receipt + "-" * 60,
        "an unknown one, padded the same": crypto.new_receipt() + "-" * 60,
    }

    answers = [
        attempt(app, "/follow-up", {"receipt": typed}, derivations, label) for label, typed in padded.items()
    ]

    assert answers[0].status == 422
    assert_same_answer(answers)
    for answer in answers:
        assert answer.derivations == (), answer.label


# --- officers' logins ---------------------------------------------------------------


def deactivate(app: Flask, account: OfficerAccount) -> None:
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        db.execute(update(Officer).where(Officer.public_id == account.public_id).values(is_active=False))


def test_every_failed_login_gets_the_same_answer_and_only_officers_cost_a_derivation(
    app, alice, bob, derivations
):
    deactivate(app, bob)
    params = runtime_of(app).keyring.kdf
    wrong_password = {
        "wrong password": {"email": alice.email, "password": "correct horse battery stapler"},
        "wrong password, email in capitals": {"email": alice.email.upper(), "password": "not the password"},
    }
    no_officer = {
        "unknown email": {"email": "nobody@example.org", "password": PASSWORD},
        "deactivated officer, right password": {"email": bob.email, "password": PASSWORD},
        "not an email address": {"email": "alice", "password": PASSWORD},
    }

    wrong_answers = [
        attempt(app, "/officer/login", fields, derivations, label) for label, fields in wrong_password.items()
    ]
    no_officer_answers = [
        attempt(app, "/officer/login", fields, derivations, label) for label, fields in no_officer.items()
    ]
    failed_answers = wrong_answers + no_officer_answers
    good = attempt(app, "/officer/login", {"email": alice.email, "password": PASSWORD}, derivations, "good")

    assert failed_answers[0].status == 422
    assert "do not match an officer" in failed_answers[0].page
    assert_same_answer(failed_answers)
    assert good.status == 303
    assert_derivations([*wrong_answers, good], (params,))
    assert_derivations(no_officer_answers, ())
