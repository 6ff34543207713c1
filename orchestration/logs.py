"""Logging for the entry points: one format, and no contact details in any line.

A provider's error, a database error's ``DETAIL`` or a traceback may quote an email
address or a phone number; the formatter scrubs every formatted line (message and
traceback) with :func:`engine.identity.scrub_text`, so the logs the stack writes hold none."""

from __future__ import annotations

import logging

from engine.identity import scrub_text

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ScrubbingFormatter(logging.Formatter):
    """A formatter whose output never holds an email address or a phone number."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


def configure(level: int | str = logging.INFO, fmt: str = FORMAT) -> None:
    """``logging.basicConfig`` with :class:`ScrubbingFormatter` on the root handler."""
    logging.basicConfig(level=level, format=fmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ScrubbingFormatter(fmt))
