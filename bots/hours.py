"""When people are at work: a bot's weekly intervals in its time zone, minus national holidays
(``Holiday`` rows without a bot) and the business's own days off.

Every comparison is between instants (UTC), never between wall-clock times: an interval
"08:00-18:00" is turned into the two instants it means on that date in the bot's zone, with
zoneinfo's history, so a change of daylight-saving rules (São Paulo until 2019, New York every
year) moves the instants and not the wall clock. Intervals never cross midnight (the model
requires opens < closes); a day open until midnight ends at 23:59, read as the end of the day,
and the next day may open at 00:00.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import Q
from django.utils import formats
from django.utils.translation import gettext, pgettext

from bots.models import BotConfig, BusinessHours, Holiday

# At most this far ahead for the next opening (a business closed for good has none).
HORIZON_DAYS = 400
# "closes 23:59" means "until midnight".
END_OF_DAY = time(23, 59)

Intervals = dict[int, list[tuple[time, time]]]


def zone(config: BotConfig) -> ZoneInfo:
    try:
        return ZoneInfo(config.timezone or settings.TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


def _intervals(config: BotConfig) -> Intervals:
    loaded = getattr(config, "loaded_intervals", None)
    return loaded if loaded is not None else intervals(config)


def has_hours(config: BotConfig) -> bool:
    """Whether any business hours are configured (none: no schedule to keep)."""
    loaded = getattr(config, "loaded_intervals", None)
    return bool(loaded) if loaded is not None else config.pk is not None and config.hours.exists()


def intervals(config: BotConfig) -> Intervals:
    """The configured opening intervals by weekday, sorted (read from the database)."""
    by_day: Intervals = defaultdict(list)
    if config.pk is None:
        return by_day
    for weekday, opens, closes in BusinessHours.objects.filter(bot=config).values_list("weekday", "opens", "closes"):
        by_day[weekday].append((opens, closes))
    for intervals in by_day.values():
        intervals.sort()
    return by_day


def _holidays(config: BotConfig, first: date, last: date) -> dict[date, str]:
    mine = Q(bot__isnull=True) | (Q(bot=config) if config.pk is not None else Q(pk__in=[]))
    rows = Holiday.objects.filter(mine, date__gte=first, date__lte=last).values_list("date", "name", "bot_id")
    days: dict[date, str] = {}
    for day, name, bot_id in rows.order_by("date"):
        # The business's own name for a day wins over the national one.
        if day not in days or bot_id is not None:
            days[day] = name
    return days


def _bounds(day: date, opens: time, closes: time, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants an interval means on ``day``. A wall time that does not exist (the hour
    skipped when clocks go forward) is read with the offset before the change, the instant it
    would have been: 00:30 on a night clocks jump from 00:00 to 01:00 is 01:30 on the new clock."""
    start = datetime.combine(day, opens, tzinfo=tz)
    if closes >= END_OF_DAY:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    else:
        end = datetime.combine(day, closes, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def _windows(config: BotConfig, first: date, days: int, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    intervals = _intervals(config)
    closed = _holidays(config, first, first + timedelta(days=days))
    windows = []
    for offset in range(days + 1):
        day = first + timedelta(days=offset)
        if day in closed:
            continue
        for opens, closes in intervals.get(day.weekday(), []):
            windows.append(_bounds(day, opens, closes, tz))
    return windows


def is_open(config: BotConfig, at: datetime) -> bool:
    """Whether people are at work at ``at`` (an aware datetime)."""
    tz = zone(config)
    now = at.astimezone(UTC)
    # The day before too: near midnight the local date of ``at`` and of an interval may differ
    # by the offset (never by more than a day).
    first = at.astimezone(tz).date() - timedelta(days=1)
    return any(start <= now < end for start, end in _windows(config, first, 2, tz))


def next_opening(config: BotConfig, at: datetime) -> datetime | None:
    """When people are next at work, in the bot's time zone: ``at`` itself while open, None
    when no interval opens within ``HORIZON_DAYS`` (no hours configured). Skips holidays and
    closed weekdays, across midnight and the end of the week."""
    tz = zone(config)
    now = at.astimezone(UTC)
    first = at.astimezone(tz).date() - timedelta(days=1)
    for start, end in _windows(config, first, HORIZON_DAYS, tz):
        if start <= now < end:
            return at.astimezone(tz)
        if start > now:
            return start.astimezone(tz)
    return None


def _clock(value: time) -> str:
    return "24:00" if value >= END_OF_DAY else value.strftime("%H:%M")


def _describe_day(intervals: list[tuple[time, time]]) -> str:
    if not intervals:
        return pgettext("business day", "closed")
    return ", ".join(f"{_clock(opens)}–{_clock(closes)}" for opens, closes in intervals)


def describe_hours(config: BotConfig, at: datetime | None = None, *, brief: bool = False) -> str:
    """The week in words for a customer (the bot's ``business_hours`` tool): consecutive days
    with the same hours grouped, the holidays of the coming weeks, and the time zone (``brief``:
    the week only, for a message). In the active language."""
    intervals = _intervals(config)
    if not any(intervals.values()):
        return gettext("No business hours are configured.")
    groups: list[tuple[int, int, str]] = []
    for weekday in range(7):
        text = _describe_day(intervals.get(weekday, []))
        if groups and groups[-1][2] == text:
            groups[-1] = (groups[-1][0], weekday, text)
        else:
            groups.append((weekday, weekday, text))
    parts = []
    for first, last, text in groups:
        if brief and not intervals.get(first):
            continue  # a message says when people are there, not every closed day
        name = str(BusinessHours.Weekday(first).label)
        if last == first + 1:
            name = gettext("%(first)s and %(last)s") % {"first": name, "last": BusinessHours.Weekday(last).label}
        elif last > first:
            name = gettext("%(first)s to %(last)s") % {"first": name, "last": BusinessHours.Weekday(last).label}
        parts.append(f"{name}: {text}")
    if brief:
        return "; ".join(parts)
    lines = ["; ".join(parts) + "."]
    tz = zone(config)
    today = (at or datetime.now(UTC)).astimezone(tz).date()
    upcoming = _holidays(config, today, today + timedelta(days=45))
    if upcoming:
        days = ", ".join(f"{formats.date_format(day, 'SHORT_DATE_FORMAT')} ({name})" for day, name in upcoming.items())
        lines.append(gettext("Closed on holidays; coming up: %(days)s.") % {"days": days})
    else:
        lines.append(gettext("Closed on national holidays."))
    lines.append(gettext("Times in %(zone)s.") % {"zone": tz.key})
    return " ".join(lines)
