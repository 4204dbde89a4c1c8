"""Progress of long calls, as every ``progress=`` option of mleval takes it.

``progress=True`` (the default) shows a ``tqdm.auto`` bar: a widget bar in Jupyter, text on
stderr in a terminal. ``progress=False`` (or None) shows nothing. A callable is called as
``progress(done, total)`` after each step instead of drawing a bar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

ProgressOption = Union[bool, None, Callable[[int, int], None]]


class Progress:
    """One long call's progress: ``update_to(done)``, ``note(text)`` (shown after the counts), ``close()``."""

    def __init__(self, option: ProgressOption, *, total: int | float | None, desc: str, unit: str = "it"):
        self.total = total
        self._callback = option if callable(option) else None
        self._bar = None
        if option is True:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=True, dynamic_ncols=True)

    def update_to(self, done: int | float, total: int | float | None = None) -> None:
        """Move to ``done`` of ``total`` (``total`` may change as the work learns its size)."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        if self._callback is not None:
            self._callback(done, self.total)

    def note(self, text: str) -> None:
        """A short status shown beside the counts (e.g. ``epoch 3/30 mAP50=0.41``)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_progress(option: Any) -> ProgressOption:
    """``option`` if it is a valid ``progress=`` value; a ``ValidationError`` naming it otherwise."""
    if option is None or isinstance(option, bool) or callable(option):
        return option
    from mleval.core.errors import ValidationError

    raise ValidationError("progress.option", f"progress must be True, False or a callable progress(done, total); "
                                             f"got {option!r}.")
