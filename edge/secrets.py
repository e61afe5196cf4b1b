"""Secrets (MQTT and ONVIF passwords, TLS keys) read from files, never from the YAML.

Under systemd the files come from ``LoadCredential=`` in ``$CREDENTIALS_DIRECTORY``;
elsewhere from the folder named by ``secrets.directory`` in the config.
"""

from __future__ import annotations

import re
from pathlib import Path

from drivers.base import DriverError

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class FileSecretStore:
    """Reads ``<directory>/<name>``; the message of a failure names the file to create."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def path_of(self, name: str) -> Path:
        if not _NAME.match(name) or name.startswith("."):
            raise DriverError(f"secret name {name!r} must be a plain file name")
        if self.directory is None:
            raise DriverError(
                f"secret {name!r} is needed but no secrets folder is set: "
                "set secrets.directory in the config or run under systemd with LoadCredential="
            )
        return self.directory / name

    def read(self, name: str) -> str:
        path = self.path_of(name)
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise DriverError(f"secret {name!r}: file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DriverError(f"secret {name!r}: cannot read {path}: {exc}") from None
