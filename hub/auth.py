"""Officer and viewer accounts: scrypt password hashes, session tokens, the login rate limit.

scrypt from the standard library (hashlib) rather than an argon2 package: it is a modern
memory-hard hash, and a tower gateway installing the hub extra gains no compiled dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

ROLES = ("viewer", "officer")
MIN_PASSWORD_CHARS = 10
# 16 MiB of memory per hash (128 * r * n bytes): slow for a guesser, ~50 ms for a login.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex), the parameters kept so they can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt_hex, digest_hex = stored.split("$")
        if kind != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, bytes.fromhex(digest_hex))


# Verified when a name has no account, so a login takes as long for an unknown name.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


def check_login(stored_hash: str | None, password: str) -> bool:
    if stored_hash is None:
        verify_password(password, _DUMMY_HASH)
        return False
    return verify_password(password, stored_hash)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the store keeps of a session token: a copy of the store opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class LoginLimiter:
    """At most `attempts` failed logins per key (client address, account name) per window."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now_s: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now_s - self.window_s:
            failures.popleft()
        return failures

    def blocked_for_s(self, keys: list[str], now_s: float | None = None) -> float:
        """Seconds until any of these keys may try again; 0 when all may."""
        now_s = time.monotonic() if now_s is None else now_s
        wait_s = 0.0
        with self._lock:
            for key in keys:
                failures = self._recent(key, now_s)
                if len(failures) >= self.attempts:
                    wait_s = max(wait_s, failures[0] + self.window_s - now_s)
        return wait_s

    def failed(self, keys: list[str], now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            for key in keys:
                self._recent(key, now_s).append(now_s)
            if len(self._failures) > 10_000:
                # A spray of names must not grow memory without bound: forget idle keys.
                for key in list(self._failures):
                    if not self._recent(key, now_s):
                        del self._failures[key]
