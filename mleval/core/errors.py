"""The one error family of mleval. Messages say what was wrong, which value, and what to do."""

from __future__ import annotations

from typing import Any


class MlevalError(Exception):
    """Base class of every error mleval raises on purpose."""


class ValidationError(MlevalError, ValueError):
    """A value broke a rule of the data model. ``rule`` names the rule, e.g. ``image.width_positive``."""

    def __init__(self, rule: str, message: str):
        self.rule = rule
        self.detail = message
        super().__init__(f"[{rule}] {message}")

    def __reduce__(self):  # errors cross process boundaries (Ray actors): keep them picklable
        return (ValidationError, (self.rule, self.detail))


class TransitionError(ValidationError):
    """An entity was asked to move to a state its state machine does not allow from where it is."""

    def __init__(self, entity: str, field: str, current: str, requested: str, allowed: tuple[str, ...]):
        self.current = current
        self.requested = requested
        self.allowed = allowed
        allowed_text = ", ".join(allowed) if allowed else "none (final state)"
        self._args = (entity, field, current, requested, allowed)
        super().__init__(
            f"{entity}.{field}_transition",
            f"{entity} {field} cannot go from {current!r} to {requested!r}; "
            f"from {current!r} it may go to: {allowed_text}.",
        )

    def __reduce__(self):
        return (TransitionError, self._args)


class NotFoundError(MlevalError, LookupError):
    """A record asked for by name or id does not exist."""


class ConflictError(MlevalError):
    """An update was based on a stale revision: someone else saved first.

    Nothing is lost: ``rejected`` holds the caller's edit, ``current`` the saved record.
    """

    def __init__(self, message: str, *, rejected: Any, current: Any, changed_by: str | None, changed_at: Any):
        self.rejected = rejected
        self.current = current
        self.changed_by = changed_by
        self.changed_at = changed_at
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_conflict, (self.args[0], self.rejected, self.current, self.changed_by, self.changed_at))


class ImageFileError(MlevalError):
    """A file could not be taken in as an image: not an image, truncated, too large, unsupported."""


class CatalogBusyError(MlevalError):
    """The catalog file is held for writing by another process."""


class CatalogUnavailableError(MlevalError):
    """The catalog owner actor died and could not be started again; the message says what to do."""


class StoreUnavailableError(MlevalError):
    """The workspace's store (its blob folder or bucket) cannot be reached or written; the message
    says what was kept and what to do."""


class DependencyError(MlevalError, ImportError):
    """An optional dependency needed for this call is missing."""


def _rebuild_conflict(message, rejected, current, changed_by, changed_at) -> ConflictError:
    return ConflictError(message, rejected=rejected, current=current, changed_by=changed_by, changed_at=changed_at)
