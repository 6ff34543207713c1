"""Public holidays by country, under the snake_case names journeys use (``at:`` entries with
``calendar:`` and ``names:``), from the maintained ``holidays`` package.

The package names its holidays in prose, per country and language ("Chinese New Year
(Spring Festival)" in CN, "Lunar New Year" in VN, "Korean New Year" in KR); each of our
names lists the English names (``en_US``, where the country has it) it stands for. Lunar
and Islamic festivals come from the package's own calendars. A country's holidays are
computed once per year and kept: the same country and year always give the same dates
(for one version of the package), so the cache cannot make two replays differ.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date

from .names import did_you_mean

__all__ = [
    "HOLIDAY_NAMES",
    "HolidayError",
    "check_holiday_name",
    "holiday_dates",
    "run_holidays_with",
]

# our name -> the package's English names for it (docs/journeys.md, "Calendar timers")
HOLIDAY_NAMES: dict[str, tuple[str, ...]] = {
    "new_year": ("New Year's Day", "Universal Fraternization Day"),
    "new_years_eve": ("New Year's Eve",),
    "spring_festival": (
        "Chinese New Year (Spring Festival)",
        "Chinese New Year",
        "Lunar New Year",
        "Korean New Year",
    ),
    "tomb_sweeping": ("Tomb-Sweeping Day",),
    "dragon_boat": ("Dragon Boat Festival",),
    "mid_autumn": ("Mid-Autumn Festival", "Chuseok"),
    "good_friday": ("Good Friday",),
    "easter": ("Easter Sunday",),
    "easter_monday": ("Easter Monday",),
    "ascension": ("Ascension Day",),
    "labor_day": (
        "Labor Day",
        "Labour Day",
        "International Labor Day",
        "National Labor Day",
        "Worker's Day",
        "Labor and Solidarity Day",
        "Holiday of Spring and Labor",
    ),
    "womens_day": ("International Women's Day",),
    "childrens_day": ("Children's Day",),
    "independence_day": ("Independence Day",),
    "national_day": ("National Day",),
    "thanksgiving": ("Thanksgiving Day", "Thanksgiving"),
    "christmas_eve": ("Christmas Eve",),
    "christmas": ("Christmas Day", "Christmas"),
    "boxing_day": ("Boxing Day", "Second Day of Christmas", "Saint Stephen's Day"),
    "eid_al_fitr": ("Eid al-Fitr",),
    "eid_al_adha": ("Eid al-Adha",),
    "islamic_new_year": ("Islamic New Year",),
    "diwali": ("Diwali",),
    "holi": ("Holi",),
    "vesak": ("Vesak Day", "Buddha Purnima", "Visakha Bucha", "The Buddha's Birthday"),
    "songkran": ("Songkran Festival",),
}
_OURS = {english: ours for ours, names in HOLIDAY_NAMES.items() for english in names}
# days off in lieu of a holiday that fell on a weekend are not the holiday itself
_NOT_THE_DAY = ("(observed)", "(in lieu)", "alternative holiday", "day off", "substitute")


class HolidayError(ValueError):
    """A country the package does not know (the message says so)."""


def check_holiday_name(name: str) -> str:
    """``name`` if it is one of :data:`HOLIDAY_NAMES`, else ValueError with did-you-mean."""
    if name in HOLIDAY_NAMES:
        return name
    raise ValueError(
        f"unknown holiday '{name}'{did_you_mean(name, HOLIDAY_NAMES)}; holidays are: "
        f"{', '.join(HOLIDAY_NAMES)}"
    )


@functools.cache
def _countries() -> frozenset[str]:
    import holidays  # on first use: a quarter of a second, which rules that need none skip

    return frozenset(holidays.list_supported_countries())


_GUARD: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext


def run_holidays_with(guard: Callable[[], AbstractContextManager[None]]) -> None:
    """Call the holidays package inside ``guard()``. The package names holidays through
    gettext, which opens its translation files (part of the package, never changed) and
    asks ``locale``: things a workflow sandbox forbids. The customer workflow passes
    ``workflow.unsafe.sandbox_unrestricted``; elsewhere nothing is needed."""
    global _GUARD
    _GUARD = guard


_BY_YEAR: dict[tuple[str, int], dict[str, date]] = {}
_MAX_CACHED = 4096


def holiday_dates(country: str, year: int) -> dict[str, date]:
    """Our name -> the first day of that holiday in ``country`` (ISO 3166 alpha-2, any
    case) in ``year``, for the holidays the country has that year. Raises
    :class:`HolidayError` for a country the package does not know."""
    code = country.strip().upper()
    found = _BY_YEAR.get((code, year))
    if found is not None:
        return found
    with _GUARD():
        import holidays

        if code not in _countries():
            raise HolidayError(
                f"'{country}' is not a country the holidays calendar knows; use an ISO 3166 "
                "code such as DE, CN or US"
            )
        entity = getattr(holidays, code)
        # always a language: without one the package would read LANGUAGE/LC_ALL from the
        # environment, and two workers could name (and so match) holidays differently
        language = "en_US" if "en_US" in entity.supported_languages else entity.default_language
        days = holidays.country_holidays(code, years=year, language=language)
    found = {}
    for day, text in sorted(days.items()):
        for part in text.split("; "):
            if any(mark in part.lower() for mark in _NOT_THE_DAY):
                continue
            ours = _OURS.get(part.replace(" (estimated)", "").strip())
            if ours is not None and ours not in found:
                found[ours] = day
    if len(_BY_YEAR) >= _MAX_CACHED:
        _BY_YEAR.clear()
    _BY_YEAR[(code, year)] = found
    return found
