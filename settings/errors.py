"""The configuration root: what stops a process from running as configured::

    ConfigurationError            a setting missing, malformed or unsafe, or a service the
    │                             process starts did not come up
    ├── PayloadKeyError           JOURNEYS_PAYLOAD_KEYS malformed, or a payload needs a key
    │                             it does not list (a ValueError too)
    └── StartupRefused            the process must not or cannot start; the sentence says
        │                         what to do
        ├── UnsafeSettings        production on a development or public secret
        └── MissingSetting        a required setting (DATABASE_URL) is not set

Library code raises these; entry points (``worker.py``, ``python -m api``, the CLI,
``python -m devstack``, the mail catcher) turn them into exit 1 with the sentence.
``StartupRefused`` is also a ``SystemExit``: callers written before this tree catch the
startup refusals as ``SystemExit`` (the tests, ``bench/chaos``), and an entry point that
forgot to catch one still exits 1 with its sentence, never a traceback. It is still an
``Exception`` (``SystemExit`` comes first in its bases only so that ``code`` holds the
sentence), so ``except ConfigurationError`` catches the whole tree."""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "MissingSetting",
    "PayloadKeyError",
    "StartupRefused",
    "UnsafeSettings",
]


class ConfigurationError(Exception):
    """The process cannot run as configured; the message says what to set."""


class PayloadKeyError(ConfigurationError, ValueError):
    """``JOURNEYS_PAYLOAD_KEYS`` is malformed, or a payload needs a key that is not listed."""


class StartupRefused(SystemExit, ConfigurationError):
    """The process must not, or cannot, start; ``str(exc)`` is the sentence to print."""


class UnsafeSettings(StartupRefused):
    """Production settings that hold a development or public default; the message says
    what to set."""


class MissingSetting(StartupRefused):
    """A setting the process needs is not set; the message says how to set it."""
