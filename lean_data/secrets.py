"""API credentials that cannot leak by accident.

A :class:`Secret` prints as ``'***'`` in ``str``, ``repr`` and f-strings, so a key put into a
log line, an exception message, the errors table or a metrics snapshot shows nothing; code
that must send it calls :meth:`Secret.reveal` at the one place it goes on the wire.
:class:`Credentials` pairs a key id with a secret and reads them from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lean_data.errors import ConfigError

__all__ = ["Credentials", "Secret"]

_MASK = "***"


class Secret:
    """A string that never shows itself; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """Return the secret's text (only where it goes on the wire)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A venue's API key id and secret; the secret never prints.

    Args:
        key_id: the public key id (masked in repr too: some venues treat it as secret).
        secret: the secret key.
    """

    key_id: Secret
    secret: Secret

    @classmethod
    def of(cls, key_id: str, secret: str) -> Credentials:
        """Wrap plain strings."""
        return cls(Secret(key_id), Secret(secret))

    @classmethod
    def from_env(cls, key_var: str, secret_var: str) -> Credentials:
        """Read both values from environment variables.

        Raises:
            ConfigError: a variable is unset or empty (its name is given, not its value).
        """
        key_id, secret = os.environ.get(key_var, ""), os.environ.get(secret_var, "")
        missing = [name for name, value in ((key_var, key_id), (secret_var, secret)) if not value]
        if missing:
            raise ConfigError(f"credentials: environment variables not set: {', '.join(missing)}")
        return cls.of(key_id, secret)

    def __repr__(self) -> str:
        return f"Credentials(key_id={_MASK!r}, secret={_MASK!r})"
