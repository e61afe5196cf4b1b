"""Secrets (MQTT and ONVIF passwords, TLS keys) read from files, never from the YAML.

Under systemd the files come from ``LoadCredential=`` in ``$CREDENTIALS_DIRECTORY``;
elsewhere from the folder named by ``secrets.directory`` in the config. A secret file
that its group or other users may read is refused: whoever can read it can log in as
the tower. Every value read is remembered so `redact` can blank it in log lines.
"""

from __future__ import annotations

import re
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.base import DriverError

if TYPE_CHECKING:
    from edge.config import TowerConfig

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# Shorter values would blank ordinary words in log lines; such a password is no
# protection anyway.
_MIN_REDACTED_LEN = 4

_known_lock = threading.Lock()
_known_values: set[str] = set()


def remember_secret(value: str) -> None:
    """Register a secret value so that `redact` blanks it wherever it appears."""
    if len(value) >= _MIN_REDACTED_LEN:
        with _known_lock:
            _known_values.add(value)


def redact(text: str) -> str:
    """`text` with every remembered secret value replaced by `***`."""
    with _known_lock:
        values = sorted(_known_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


def check_private(path: Path, what: str) -> None:
    """Refuse a secret file that group or others may read or write (names the fix)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DriverError(f"{what}: file {path} does not exist") from None
    except OSError as exc:
        raise DriverError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DriverError(
            f"{what}: {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )


class FileSecretStore:
    """Reads ``<directory>/<name>``; the message of a failure names the file to create."""

    def __init__(self, directory: Path | None, *, require_private: bool = True) -> None:
        self.directory = directory
        self.require_private = require_private

    @classmethod
    def from_config(cls, cfg: TowerConfig) -> FileSecretStore:
        """The store the config describes (`secrets.directory`, `secrets.allow_readable_files`)."""
        return cls(cfg.secrets_directory(), require_private=not cfg.secrets.allow_readable_files)

    def path_of(self, name: str) -> Path:
        if not _NAME.match(name) or name.startswith("."):
            raise DriverError(f"secret name {name!r} must be a plain file name")
        if self.directory is None:
            raise DriverError(
                f"secret {name!r} is needed but no secrets folder is set: "
                "set secrets.directory in the config or run under systemd with LoadCredential="
            )
        return self.directory / name

    def private_path(self, name: str) -> Path:
        """The path of a secret file (e.g. a TLS key) after checking its permissions."""
        path = self.path_of(name)
        if self.require_private:
            check_private(path, f"secret {name!r} (secrets.allow_readable_files is off)")
        elif not path.exists():
            raise DriverError(f"secret {name!r}: file {path} does not exist")
        return path

    def read(self, name: str) -> str:
        path = self.private_path(name)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise DriverError(f"secret {name!r}: cannot read {path}: {reason}") from None
        if not value:
            # systemd's SetCredential= default: the unit names the credential but its
            # source file was not installed; only a config that asks for it fails.
            raise DriverError(f"secret {name!r}: {path} is empty; put the secret in it")
        remember_secret(value)
        return value
