"""The registry's errors: one class per way a distribution API operation fails."""

from __future__ import annotations

from solver.errors import LLBookError


class RegistryError(LLBookError):
    """A registry operation that failed; the message names the registry and the object."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or kept failing (connection errors, 5xx, 429)."""


class TransferInterruptedError(RegistryUnavailableError):
    """A blob download that broke off after it had started; retried with a fresh writer."""


class AuthenticationError(RegistryError):
    """The registry wants credentials we do not have, or rejected the ones we sent."""


class NotFoundError(RegistryError):
    """The registry has no such manifest, tag or blob."""


class ManifestError(RegistryError):
    """A manifest that is malformed, too large, of an unsupported type, or not as promised."""


class PlatformNotFoundError(RegistryError):
    """No manifest of an index matches the requested platform."""


class BlobDigestMismatchError(RegistryError):
    """Downloaded bytes do not match the descriptor's digest or size; nothing was stored."""

    def __init__(self, message: str, *, blob: str, actual: str, size: int) -> None:
        self.blob = blob
        self.actual = actual
        self.size = size
        super().__init__(message)
