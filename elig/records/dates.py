"""Dates as clinical records give them, and calendar-exact arithmetic.

Records often know a date only to the year or month (``onset: 2023-05``). A
``PartialDate`` keeps what is known; ``earliest()``/``latest()`` give the
bounds, and comparisons that depend on the missing part come out unknown
(``None``) rather than guessed.

Month and year arithmetic is calendar-exact: ``as_of - 6 months`` moves the
month back by six and clamps the day to the end of that month
(2024-08-31 − 6 months = 2024-02-29). Days and weeks are exact day counts.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import attrs


class DateSyntaxError(ValueError):
    pass


_DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?$",
    re.ASCII,
)


# A date-time is at most "2024-03-15T10:30:00.123456789+05:30"; longer text is not a date
# (and is not scanned further). UTC offsets in use run from -12:00 to +14:00.
_MAX_DATE_CHARS = 64
_MAX_OFFSET_MINUTES = {1: 14 * 60, -1: 12 * 60}
_LAST_ORDINAL = dt.date.max.toordinal()
_MIDNIGHT = dt.time(0, 0)


@attrs.frozen(order=False, weakref_slot=False)  # no weak references: see _new_date
class PartialDate:
    """A date known to the year, month, or day, with an optional time of day (UTC)."""

    year: int
    month: int | None = None
    day: int | None = None
    time: dt.time | None = None
    # (earliest(), latest(), sort_key()), computed when the date is made: a date is shared by the
    # entries that give it and read many times by every rule that looks at them, and the hottest
    # readers (measurement selection, the record's index) read this tuple without a call.
    bounds: tuple = attrs.field(init=False, eq=False, repr=False)
    # The text (``str``), made once for the same reason: every explanation that shows the date prints it.
    _text: str | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> "PartialDate":
        s = str(text).strip()
        m = _DATE_RE.match(s) if len(s) <= _MAX_DATE_CHARS else None
        if not m:
            shown = s if len(s) <= 40 else s[:40] + "…"
            raise DateSyntaxError(f"cannot read date {shown!r}: expected YYYY, YYYY-MM, YYYY-MM-DD "
                                  f"or an ISO date-time")
        y, mo, d, hh, mi, ss, tz = m.groups()
        year = int(y)
        month = int(mo) if mo else None
        day = int(d) if d else None
        # Every year from 1 and every day from 1 to 28 of every month exists: only other dates are
        # checked further (a FHIR bundle gives thousands of date-times, each read once).
        if not (year and (month is None or 0 < month < 13) and (day is None or 0 < day < 29)):
            _check_calendar(s, year, month, day)
        if hh is None:
            return _new_date(year, month, day, None) if cls is PartialDate else cls(year, month, day)
        hour, minute, second = int(hh), int(mi), int(ss or 0)
        if hour > 23 or minute > 59 or second > 59:
            # 24:00 and the leap second 23:59:60 are refused rather than rolled over:
            # a record that says them is read as unusable, never as another day.
            raise DateSyntaxError(f"cannot read date {s!r}: the time {hh}:{mi}{':' + ss if ss else ''} "
                                  f"is not a time of day (00:00 to 23:59:59)")
        if tz is not None and tz != "Z" and tz[1:] not in _ZERO_OFFSETS:
            # To UTC: the offset moves the time of day, and the day when it crosses midnight.
            sign = 1 if tz[0] == "+" else -1
            offset_minutes = int(tz[-2:])
            offset = int(tz[1:3]) * 60 + offset_minutes
            if offset_minutes > 59 or offset > _MAX_OFFSET_MINUTES[sign]:
                raise DateSyntaxError(f"cannot read date {s!r}: the UTC offset {tz} does not exist "
                                      f"(offsets run from -12:00 to +14:00)")
            days, minutes = divmod(hour * 60 + minute - sign * offset, 1440)
            hour, minute = divmod(minutes, 60)
            if days:
                ordinal = dt.date(year, month, day).toordinal() + days
                if not 1 <= ordinal <= _LAST_ORDINAL:
                    raise DateSyntaxError(f"cannot read date {s!r}: in UTC it falls outside the years "
                                          f"0001 to 9999")
                moved = dt.date.fromordinal(ordinal)
                year, month, day = moved.year, moved.month, moved.day
        time = dt.time(hour, minute, second)
        return _new_date(year, month, day, time) if cls is PartialDate else cls(year, month, day, time)

    @classmethod
    def from_date(cls, d: dt.date) -> "PartialDate":
        if isinstance(d, dt.datetime):
            return cls(d.year, d.month, d.day, d.time())
        return cls(d.year, d.month, d.day)

    @property
    def is_complete(self) -> bool:
        return self.day is not None

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "bounds", _bounds(self.year, self.month, self.day, self.time))

    def earliest(self) -> dt.date:
        return self.bounds[0]

    def latest(self) -> dt.date:
        return self.bounds[1]

    def sort_key(self) -> tuple:
        """Newest-first sorting key: a later or more precise stamp sorts later."""
        return self.bounds[2]

    def instant(self) -> dt.datetime | None:
        """The exact moment, when known to the second (for pairing measurements)."""
        if self.day is None or self.time is None:
            return None
        return dt.datetime.combine(self.earliest(), self.time)

    def __str__(self) -> str:
        return self._text or self._make_text()

    def _make_text(self) -> str:
        s = f"{self.year:04d}"
        if self.month is not None:
            s += f"-{self.month:02d}"
        if self.day is not None:
            s += f"-{self.day:02d}"
        if self.time is not None:
            s += f"T{self.time.strftime('%H:%M')}"
        object.__setattr__(self, "_text", s)
        return s


_ZERO_OFFSETS = ("00:00", "0000")


def _bounds(year: int, month: int | None, day: int | None, time: dt.time | None) -> tuple:
    """A date's (earliest day, latest day, newest-first sorting key)."""
    earliest = dt.date(year, month or 1, day or 1)
    if day is not None:
        latest = earliest
    else:
        month = month or 12
        latest = dt.date(year, month, calendar.monthrange(year, month)[1])
    return earliest, latest, (latest, time or _MIDNIGHT)


def _check_calendar(s: str, year: int, month: int | None, day: int | None) -> None:
    """Raise ``DateSyntaxError`` if the year, month and day given are not a day of the calendar."""
    try:
        dt.date(year, month or 1, day or 1)
    except ValueError as exc:
        raise DateSyntaxError(f"cannot read date {s!r}: {exc}") from None
    if month == 0:  # '2024-00' and '2024-03-00' name no month and no day: never read as January or the 1st
        raise DateSyntaxError(f"cannot read date {s!r}: month must be in 1..12")
    if day == 0:
        raise DateSyntaxError(f"cannot read date {s!r}: day is out of range for month")


class _PartialDateSlots:
    """A plain object with ``PartialDate``'s slots: ``_new_date`` fills one, then makes it a PartialDate."""

    __slots__ = PartialDate.__slots__


def _new_date(year: int, month: int | None, day: int | None, time: dt.time | None) -> PartialDate:
    """``PartialDate(year, month, day, time)``, several times as fast.

    An ``attrs.frozen`` class sets each field through ``object.__setattr__``, a slow call per
    field; this stores them in a plain object of the same slots and assigns its ``__class__``,
    which Python allows between classes of the same layout (``elig.records.builder.slot_builder``
    builds entries the same way). The object is a PartialDate like any other.
    """
    new = _PartialDateSlots()
    new.year = year
    new.month = month
    new.day = day
    new.time = time
    new.bounds = _bounds(year, month, day, time)
    new._text = None
    new.__class__ = PartialDate
    return new


if PartialDate.__slots__ != ("year", "month", "day", "time", "bounds", "_text") or \
        _new_date(2024, 3, 8, None) != PartialDate(2024, 3, 8):  # pragma: no cover
    raise ImportError("elig.records.dates: PartialDate's fields changed; update _new_date")


def parse_date(text) -> PartialDate:
    if isinstance(text, PartialDate):
        return text
    if isinstance(text, (dt.date, dt.datetime)):
        return PartialDate.from_date(text)
    return PartialDate.parse(str(text))


def add_months(d: dt.date, months: int) -> dt.date:
    """Calendar-exact month arithmetic, clamping to the end of the month."""
    total = d.year * 12 + (d.month - 1) + months
    year, month0 = divmod(total, 12)
    month = month0 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return dt.date(year, month, day)


_UNIT_KINDS = {
    "day": "day", "week": "week", "month": "month", "year": "year", "hour": "hour",
}


def shift(d: dt.date, amount: float, unit: str) -> dt.date:
    """``d + amount unit`` for a duration unit (day, week, month, year; negative moves back)."""
    unit = _UNIT_KINDS.get(unit, unit)
    if unit == "day":
        return d + dt.timedelta(days=amount)
    if unit == "hour":
        return d + dt.timedelta(hours=amount)
    if unit == "week":
        return d + dt.timedelta(weeks=amount)
    if unit in ("month", "year"):
        months = amount * (12 if unit == "year" else 1)
        if float(months).is_integer():
            return add_months(d, int(months))
        # A fractional month (1.5 months) is read as whole months plus days at 30.4375 d/month.
        whole = int(months)
        return add_months(d, whole) + dt.timedelta(days=(months - whole) * 30.4375)
    raise ValueError(f"not a duration unit: {unit}")


def window_start(as_of: dt.date, amount: float, unit: str) -> dt.date:
    """The first day of a look-back window of ``amount unit`` ending on ``as_of`` (inclusive)."""
    return shift(as_of, -amount, unit)


def within(date: PartialDate, start: dt.date, end: dt.date) -> bool | None:
    """Whether a (partial) date lies in [start, end]; None when it depends on the unknown part."""
    lo, hi = date.earliest(), date.latest()
    if lo >= start and hi <= end:
        return True
    if hi < start or lo > end:
        return False
    return None


def whole_years_between(born: PartialDate, on: dt.date) -> int | None:
    """Age in whole years; None when a partial birth date leaves it undecided."""
    def years(b: dt.date) -> int:
        return on.year - b.year - ((on.month, on.day) < (b.month, b.day))

    lo, hi = years(born.latest()), years(born.earliest())
    return lo if lo == hi else None
