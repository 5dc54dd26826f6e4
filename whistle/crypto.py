"""Whistle's cryptography: pure functions over bytes.

Everything here is built from the primitives of ``cryptography`` and
``argon2-cffi`` (AES-256-GCM, HPKE, HKDF, HMAC, Argon2id); nothing is invented
below that level. This module imports neither Flask nor SQLAlchemy nor anything
else of Whistle, so it can be read and tested on its own.

Layout of the scheme (see DESIGN.md):

- a report has a random data key (DEK) and a random internal key; fields are
  sealed with AES-256-GCM, the associated data naming the report and field;
- the keys are wrapped for officers and for the organisation recovery key with
  HPKE (ML-KEM-768 + X25519, HKDF-SHA256, AES-256-GCM), ``info`` naming the
  report and the purpose;
- the reporter's copy of the DEK is sealed under Argon2id(receipt, salt);
- attachments are sealed as a STREAM of fixed-size AES-GCM chunks.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import argon2.low_level
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SALT_BYTES = 16

#: The HPKE suite of RFC 9180 with the hybrid post-quantum KEM.
HPKE_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
MLKEM_SEED_BYTES = 64
X25519_BYTES = 32
MLKEM_PUBLIC_BYTES = 1184
PRIVATE_KEY_BYTES = MLKEM_SEED_BYTES + X25519_BYTES
PUBLIC_KEY_BYTES = MLKEM_PUBLIC_BYTES + X25519_BYTES

#: Crockford's base32 alphabet: no I, L, O or U.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
RECEIPT_CHARS = 16  # 80 bits
RECOVERY_CHARS = 32  # 160 bits

#: Attachments are sealed in chunks of this many plaintext bytes.
CHUNK_BYTES = 64 * 1024
_MAX_CHUNKS = 2**64


class CryptoError(Exception):
    """A ciphertext did not open: wrong key, wrong context, or tampered data."""


class InvalidCode(ValueError):
    """A receipt or recovery code is not of the right shape."""


# --- associated data -------------------------------------------------------


def context(*parts: str | bytes) -> bytes:
    """Encode the parts of an associated-data string unambiguously.

    Each part is length-prefixed, so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    out = [b"whistle/1"]
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        out.append(len(raw).to_bytes(4, "big"))
        out.append(raw)
    return b"".join(out)


# --- symmetric sealing -----------------------------------------------------


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(KEY_BYTES)


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM with a random nonce; returns nonce || ciphertext || tag."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


#: Marks a padded plaintext (:func:`seal_padded`); sixteen bytes that no text or JSON begins with,
#: and that a random key begins with once in 2**128.
_PADDED = b"\x00whistle:padded"
#: The smallest padded size: every short text looks the same.
MIN_PADDED_BYTES = 1024


def padded_size(length: int) -> int:
    """Padmé (Nikitin et al., 2019): at most 12% more, and a size that tells only the order of
    magnitude of the length, never less than :data:`MIN_PADDED_BYTES`."""
    length = max(length, MIN_PADDED_BYTES)
    exponent = length.bit_length() - 1
    low_bits = exponent - exponent.bit_length()
    mask = (1 << low_bits) - 1
    return (length + mask) & ~mask


def seal_padded(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Like :func:`seal`, padded first, so that the sealed size gives away little of the length
    of what was written. :func:`open_sealed` removes the padding."""
    framed = _PADDED + len(plaintext).to_bytes(8, "big") + plaintext
    return seal(key, framed + bytes(padded_size(len(framed)) - len(framed)), associated_data)


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Open what :func:`seal` or :func:`seal_padded` made; raise :class:`CryptoError` on any mismatch."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise CryptoError("sealed value too short")
    try:
        plaintext = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("sealed value did not open") from exc
    if not plaintext.startswith(_PADDED):
        return plaintext
    start = len(_PADDED) + 8
    length = int.from_bytes(plaintext[len(_PADDED) : start], "big")
    if start + length > len(plaintext):
        raise CryptoError("padded value is damaged")
    return plaintext[start : start + length]


# --- key derivation --------------------------------------------------------


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters, stored beside every key derived with them."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024  # KiB
    parallelism: int = 1

    def encode(self) -> str:
        return f"argon2id$m={self.memory_cost},t={self.time_cost},p={self.parallelism}"

    @classmethod
    def decode(cls, text: str) -> KdfParams:
        name, _, rest = text.partition("$")
        if name != "argon2id":
            raise ValueError(f"unknown key derivation {name!r}")
        fields = dict(item.split("=", 1) for item in rest.split(","))
        return cls(
            time_cost=int(fields["t"]),
            memory_cost=int(fields["m"]),
            parallelism=int(fields["p"]),
        )


def derive_key(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id: a 256-bit key from a low-entropy secret (password, receipt)."""
    return argon2.low_level.hash_secret_raw(
        secret=secret,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=argon2.low_level.Type.ID,
    )


def expand_key(key: bytes, salt: bytes, purpose: bytes) -> bytes:
    """HKDF-SHA256: a subkey of a high-entropy key, bound to a purpose."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=purpose).derive(key)


# --- receipts and recovery codes ------------------------------------------


def _random_code(length: int) -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(length))


def format_code(code: str) -> str:
    """Group a normalised code in fours: ``ABCD-EFGH-...``."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise_code(text: str, length: int) -> str:
    """Read a typed code: any case, spaces and dashes ignored, O/I/L as 0/1/1."""
    if not text.isascii():
        raise InvalidCode("not a valid code")
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_READ_AS)
    if len(cleaned) != length or any(char not in CROCKFORD for char in cleaned):
        raise InvalidCode("not a valid code")
    return cleaned


def new_receipt() -> str:
    """A fresh receipt of 80 bits, formatted ``XXXX-XXXX-XXXX-XXXX``."""
    return format_code(_random_code(RECEIPT_CHARS))


def normalise_receipt(text: str) -> str:
    return normalise_code(text, RECEIPT_CHARS)


def receipt_lookup(pepper: bytes, normalised_receipt: str) -> bytes:
    """HMAC-SHA256(pepper, receipt): the index under which a report is found."""
    return hmac.new(pepper, normalised_receipt.encode(), hashlib.sha256).digest()


def submission_lookup(pepper: bytes, token: str) -> bytes:
    """HMAC-SHA256(pepper, one-time token of a report form): how a resent form is recognised."""
    return hmac.new(pepper, b"submission/" + token.encode(), hashlib.sha256).digest()


def new_recovery_code() -> str:
    """An officer's one-time recovery key: 160 bits in eight groups of four."""
    return format_code(_random_code(RECOVERY_CHARS))


def recovery_code_key(code: str, salt: bytes) -> bytes:
    """The key that seals an officer's private key under their recovery code.

    The code has 160 bits of entropy, so HKDF is enough; no slow hash is needed.
    """
    normalised = normalise_code(code, RECOVERY_CHARS)
    return expand_key(normalised.encode(), salt, b"whistle/1 officer recovery")


# --- hybrid post-quantum key pairs and HPKE wrapping ----------------------


@dataclass(frozen=True)
class KeyPair:
    private: bytes  # ML-KEM-768 seed (64) || X25519 private (32)
    public: bytes  # ML-KEM-768 public (1184) || X25519 public (32)


def generate_keypair() -> KeyPair:
    kem = mlkem.MLKEM768PrivateKey.generate()
    dh = x25519.X25519PrivateKey.generate()
    return KeyPair(private=kem.private_bytes_raw() + dh.private_bytes_raw(), public=_public_bytes(kem, dh))


def _public_bytes(kem: mlkem.MLKEM768PrivateKey, dh: x25519.X25519PrivateKey) -> bytes:
    return kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw()


def _load_private(private: bytes) -> hpke.MLKEM768X25519PrivateKey:
    if len(private) != PRIVATE_KEY_BYTES:
        raise CryptoError("not a private key")
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:MLKEM_SEED_BYTES])
    dh = x25519.X25519PrivateKey.from_private_bytes(private[MLKEM_SEED_BYTES:])
    return hpke.MLKEM768X25519PrivateKey(kem, dh)


@functools.lru_cache(maxsize=256)
def _load_public(public: bytes) -> hpke.MLKEM768X25519PublicKey:
    """Load a public key; cached, since loading ML-KEM-768 takes twice as long as wrapping with it
    and every report wraps its keys for the same few officers."""
    if len(public) != PUBLIC_KEY_BYTES:
        raise CryptoError("not a public key")
    kem = mlkem.MLKEM768PublicKey.from_public_bytes(public[:MLKEM_PUBLIC_BYTES])
    dh = x25519.X25519PublicKey.from_public_bytes(public[MLKEM_PUBLIC_BYTES:])
    return hpke.MLKEM768X25519PublicKey(kem, dh)


def public_key_of(private: bytes) -> bytes:
    """The public half that belongs to a private key."""
    if len(private) != PRIVATE_KEY_BYTES:
        raise CryptoError("not a private key")
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:MLKEM_SEED_BYTES])
    dh = x25519.X25519PrivateKey.from_private_bytes(private[MLKEM_SEED_BYTES:])
    return _public_bytes(kem, dh)


def wrap_key(public: bytes, key: bytes, info: bytes) -> bytes:
    """HPKE-seal a key for the holder of a private key; ``info`` binds its use."""
    return HPKE_SUITE.encrypt(key, _load_public(public), info=info)


def unwrap_key(private: bytes, wrapped: bytes, info: bytes) -> bytes:
    try:
        return HPKE_SUITE.decrypt(wrapped, _load_private(private), info=info)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("wrapped key did not open") from exc


def wrap_info(report_id: str, purpose: str) -> bytes:
    return context("wrap", report_id, purpose)


# --- the organisation recovery key as printable text ----------------------

_RECOVERY_HEADER = "WHISTLE ORGANISATION RECOVERY KEY"


def _b32encode(data: bytes) -> str:
    number = int.from_bytes(b"\x01" + data, "big")
    chars = []
    while number:
        number, digit = divmod(number, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


def _b32decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 32 + CROCKFORD.index(char)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    if not raw or raw[0] != 1:
        raise InvalidCode("not a recovery key")
    return raw[1:]


def _recovery_check(private: bytes) -> bytes:
    return hashlib.sha256(b"whistle/1 recovery check" + private).digest()[:5]


def export_private_key(private: bytes) -> str:
    """Printable text of a private key with a 40-bit check, so a typing error is caught."""
    if len(private) != PRIVATE_KEY_BYTES:
        raise CryptoError("not a private key")
    check = _recovery_check(private)
    body = format_code(_b32encode(private + check))
    lines = [body[i : i + 50].strip("-") for i in range(0, len(body), 50)]
    return "\n".join([_RECOVERY_HEADER, *lines, ""])


def import_private_key(text: str) -> bytes:
    """Read what :func:`export_private_key` printed (typed back or scanned)."""
    if not text.isascii():
        raise InvalidCode("not a recovery key")
    body = text.upper().replace(_RECOVERY_HEADER, "")
    cleaned = "".join(body.split()).replace("-", "").upper().translate(_READ_AS)
    if not cleaned or any(char not in CROCKFORD for char in cleaned):
        raise InvalidCode("not a recovery key")
    raw = _b32decode(cleaned)
    private, check = raw[:-5], raw[-5:]
    if len(private) != PRIVATE_KEY_BYTES:
        raise InvalidCode("not a recovery key")
    if not hmac.compare_digest(_recovery_check(private), check):
        raise InvalidCode("recovery key has a typing error")
    return private


# --- attachments: a STREAM of AES-GCM chunks ------------------------------

#: Chunks sealed or opened per read and per write of a stream: the format is
#: the same whatever this is, but a mebibyte at a time costs far fewer calls
#: and copies than one chunk at a time.
STREAM_BATCH = 16


def file_key(dek: bytes, file_id: str) -> bytes:
    """The per-file key of an attachment, derived from the report's data key."""
    return expand_key(dek, file_id.encode(), b"whistle/1 attachment")


def _fill(source: BinaryIO, buffer: bytearray) -> int:
    """Read into ``buffer`` until it is full or the stream ends; return how many bytes came."""
    view = memoryview(buffer)
    readinto = getattr(source, "readinto", None)
    filled = 0
    while filled < len(buffer):
        if readinto is not None:
            count = readinto(view[filled:]) or 0
        else:
            part = source.read(len(buffer) - filled)
            count = len(part)
            view[filled : filled + count] = part
        if not count:
            break
        filled += count
    return filled


def _chunk_nonce(counter: int, last: bool) -> bytes:
    if counter >= _MAX_CHUNKS:
        raise CryptoError("stream too long")
    return b"\x00\x00\x00" + counter.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def encrypt_stream(
    key: bytes,
    associated_data: bytes,
    source: BinaryIO,
    sink: BinaryIO,
    chunk_bytes: int = CHUNK_BYTES,
    *,
    batch: int = STREAM_BATCH,
) -> int:
    """Seal ``source`` into ``sink`` chunk by chunk; return the plaintext size.

    Each chunk's nonce is its counter and a last-chunk flag, so chunks cannot be
    reordered, dropped or the stream cut short without detection. The key must
    be used for one stream only (see :func:`file_key`). ``batch`` chunks are read
    and written at a time (``sink.write`` must take what it is given before it
    returns, as files do).
    """
    aead = AESGCM(key)
    block = chunk_bytes * batch
    current, following = bytearray(block), bytearray(block)
    sealed = memoryview(bytearray(block + batch * TAG_BYTES))
    total = 0
    counter = 0
    filled = _fill(source, current)
    while True:
        ahead = _fill(source, following) if filled == block else 0
        at_end = not ahead
        plain = memoryview(current)[:filled]
        written = 0
        # An empty stream is one empty chunk, flagged as the last.
        for offset in range(0, max(filled, 1), chunk_bytes):
            chunk = plain[offset : offset + chunk_bytes]
            last = at_end and offset + chunk_bytes >= filled
            end = written + len(chunk) + TAG_BYTES
            aead.encrypt_into(_chunk_nonce(counter, last), chunk, associated_data, sealed[written:end])
            written = end
            counter += 1
        sink.write(sealed[:written])
        total += filled
        if at_end:
            return total
        current, following, filled = following, current, ahead


def decrypt_stream(
    key: bytes,
    associated_data: bytes,
    source: BinaryIO,
    chunk_bytes: int = CHUNK_BYTES,
    *,
    batch: int = STREAM_BATCH,
) -> Iterator[bytes]:
    """Yield the plaintext of :func:`encrypt_stream`'s output, ``batch`` chunks at a time.

    ``batch`` chunks are read at a time, and yielded as one piece once all of
    them have opened: a WSGI server sends each piece with a call of its own, and
    a call per batch costs far less than a call per chunk. Raises
    :class:`CryptoError` at the first chunk that does not open, including a
    stream that ends before its last chunk or goes on after it.
    """
    aead = AESGCM(key)
    sealed_bytes = chunk_bytes + TAG_BYTES
    block = sealed_bytes * batch
    current, following = bytearray(block), bytearray(block)
    counter = 0
    filled = _fill(source, current)
    while True:
        ahead = _fill(source, following) if filled == block else 0
        at_end = not ahead
        sealed = memoryview(current)[:filled]
        # The chunks of this batch; a stream with no bytes at all still has one (that will not open).
        pieces = []
        try:
            for offset in range(0, max(filled, 1), sealed_bytes):
                last = at_end and offset + sealed_bytes >= filled
                chunk = sealed[offset : offset + sealed_bytes]
                pieces.append(aead.decrypt(_chunk_nonce(counter, last), chunk, associated_data))
                counter += 1
        except (InvalidTag, ValueError) as exc:
            raise CryptoError("attachment chunk did not open") from exc
        yield b"".join(pieces)
        if at_end:
            return
        current, following, filled = following, current, ahead


class StreamSealer:
    """Seal a STREAM (the format of :func:`encrypt_stream`) one chunk at a time, in order.

    For data that arrives in pieces: the caller says which chunk is the last,
    and nothing may be sealed after it.
    """

    def __init__(self, key: bytes, associated_data: bytes) -> None:
        self._aead = AESGCM(key)
        self._associated_data = associated_data
        self._counter = 0
        self._ended = False

    def seal(self, chunk: bytes | bytearray | memoryview, last: bool) -> bytes:
        if self._ended:
            raise CryptoError("the stream has ended")
        sealed = self._aead.encrypt(_chunk_nonce(self._counter, last), chunk, self._associated_data)
        self._counter += 1
        self._ended = last
        return sealed


class StreamOpener:
    """Open what a :class:`StreamSealer` sealed, one chunk at a time, in the same order."""

    def __init__(self, key: bytes, associated_data: bytes) -> None:
        self._aead = AESGCM(key)
        self._associated_data = associated_data
        self._counter = 0

    def open(self, sealed: bytes | bytearray | memoryview, last: bool) -> bytes:
        try:
            chunk = self._aead.decrypt(_chunk_nonce(self._counter, last), sealed, self._associated_data)
        except (InvalidTag, ValueError) as exc:
            raise CryptoError("stream chunk did not open") from exc
        self._counter += 1
        return chunk


def sealed_stream_size(plaintext_bytes: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many bytes :func:`encrypt_stream` writes for a plaintext of this size."""
    chunks = max(1, -(-plaintext_bytes // chunk_bytes))
    return plaintext_bytes + chunks * TAG_BYTES


_FILLER_CHUNK = 1024 * 1024


def pad_stream(sink: BinaryIO, sealed_bytes: int) -> int:
    """Follow a sealed stream of ``sealed_bytes`` with random filler up to its :func:`padded_size`,
    so the file's size tells only the order of magnitude of what was sealed; return the filler's
    size. The filler looks like ciphertext; a reader stops at :func:`sealed_stream_size`."""
    filler = padded_size(sealed_bytes) - sealed_bytes
    left = filler
    while left:
        piece = min(left, _FILLER_CHUNK)
        sink.write(secrets.token_bytes(piece))
        left -= piece
    return filler


class FirstBytes:
    """The first ``limit`` bytes of a stream: the sealed part of a padded file."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self._source = source
        self._left = limit

    def readinto(self, buffer: memoryview) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        count = self._source.readinto(view) or 0  # type: ignore[attr-defined]
        self._left -= count
        return count


def token_hash(token: str) -> bytes:
    """SHA-256 of a high-entropy bearer token (session or setup link) for storage."""
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_public_id() -> str:
    """A random, non-sequential identifier for URLs (128 bits)."""
    return secrets.token_hex(16)
