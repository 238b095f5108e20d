"""Business hours: weekday intervals, holidays (national and the business's own), the change of
daylight-saving rules, and the next opening across nights, weekends and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from bots import hours
from bots.models import BotConfig, BusinessHours, Holiday

SP = ZoneInfo("America/Sao_Paulo")
NY = ZoneInfo("America/New_York")


@pytest.fixture
def config(inbox) -> BotConfig:
    """Weekdays 08:00-12:00 and 13:00-18:00, Saturday 09:00-13:00, closed on Sunday."""
    bot = BotConfig.objects.create(inbox=inbox, timezone="America/Sao_Paulo")
    for weekday in range(5):
        BusinessHours.objects.create(bot=bot, weekday=weekday, opens=time(8), closes=time(12))
        BusinessHours.objects.create(bot=bot, weekday=weekday, opens=time(13), closes=time(18))
    BusinessHours.objects.create(bot=bot, weekday=5, opens=time(9), closes=time(13))
    return bot


def local(year: int, month: int, day: int, hour: int, minute: int = 0, tz: ZoneInfo = SP) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


@pytest.mark.django_db
def test_it_is_open_inside_a_weekday_interval_and_closed_outside(config) -> None:
    # Wednesday 2025-06-11
    assert hours.is_open(config, local(2025, 6, 11, 8))
    assert hours.is_open(config, local(2025, 6, 11, 17, 59))
    assert not hours.is_open(config, local(2025, 6, 11, 7, 59))
    assert not hours.is_open(config, local(2025, 6, 11, 12, 30))  # lunch
    assert not hours.is_open(config, local(2025, 6, 11, 18))
    assert hours.is_open(config, local(2025, 6, 14, 10))  # Saturday
    assert not hours.is_open(config, local(2025, 6, 15, 10))  # Sunday


@pytest.mark.django_db
def test_it_reads_an_instant_given_in_another_zone(config) -> None:
    # 11:30 UTC is 08:30 in São Paulo (UTC-3 since 2019).
    assert hours.is_open(config, datetime(2025, 6, 11, 11, 30, tzinfo=UTC))
    assert not hours.is_open(config, datetime(2025, 6, 11, 10, 30, tzinfo=UTC))


@pytest.mark.django_db
def test_it_is_closed_on_a_national_holiday(config) -> None:
    # Tiradentes, Monday 2025-04-21: preloaded by the migration, for every inbox.
    assert Holiday.objects.filter(bot__isnull=True, date=date(2025, 4, 21)).exists()

    assert not hours.is_open(config, local(2025, 4, 21, 10))
    assert hours.is_open(config, local(2025, 4, 22, 10))


@pytest.mark.django_db
def test_it_is_closed_on_the_business_own_day_off_but_another_business_is_open(config, inbox) -> None:
    # given
    Holiday.objects.create(bot=config, date=date(2025, 6, 11), name="Inventário")
    from conversations.models import Inbox

    other_inbox = Inbox.objects.create(name="Outra", phone_number_id="OTHER")
    other = BotConfig.objects.create(inbox=other_inbox)
    BusinessHours.objects.create(bot=other, weekday=2, opens=time(8), closes=time(18))

    # then
    assert not hours.is_open(config, local(2025, 6, 11, 10))
    assert hours.is_open(other, local(2025, 6, 11, 10))


@pytest.mark.django_db
def test_the_next_opening_skips_lunch_the_night_and_the_weekend(config) -> None:
    assert hours.next_opening(config, local(2025, 6, 11, 12, 30)) == local(2025, 6, 11, 13)
    assert hours.next_opening(config, local(2025, 6, 11, 19)) == local(2025, 6, 12, 8)
    # Saturday afternoon: Sunday is closed, Monday 08:00.
    assert hours.next_opening(config, local(2025, 6, 14, 14)) == local(2025, 6, 16, 8)
    # While open, now.
    assert hours.next_opening(config, local(2025, 6, 11, 9)) == local(2025, 6, 11, 9)


@pytest.mark.django_db
def test_the_next_opening_skips_a_holiday_after_a_weekend(config) -> None:
    # Saturday 2025-04-19 after closing; Sunday closed; Monday 04-21 is Tiradentes.
    assert hours.next_opening(config, local(2025, 4, 19, 14)) == local(2025, 4, 22, 8)
    # Christmas 2025 is a Thursday: Wednesday evening -> Friday 08:00.
    assert hours.next_opening(config, local(2025, 12, 24, 19)) == local(2025, 12, 26, 8)


@pytest.mark.django_db
def test_the_next_opening_wraps_from_sunday_night_to_monday(config) -> None:
    opening = hours.next_opening(config, local(2025, 6, 15, 23, 30))

    assert opening == local(2025, 6, 16, 8)
    assert opening.weekday() == 0


@pytest.mark.django_db
def test_it_follows_the_daylight_saving_rules_of_their_time(config) -> None:
    # São Paulo started daylight saving on 2018-11-04 (UTC-3 -> UTC-2) and abolished it in 2019.
    # Monday 2018-11-05 08:00 was 10:00 UTC, not 11:00.
    opening = hours.next_opening(config, local(2018, 11, 3, 14))
    assert opening.astimezone(UTC) == datetime(2018, 11, 5, 10, tzinfo=UTC)
    assert hours.is_open(config, datetime(2018, 11, 5, 10, 30, tzinfo=UTC))
    # The Friday before, still UTC-3: 10:30 UTC was 07:30, closed.
    assert not hours.is_open(config, datetime(2018, 11, 2, 10, 30, tzinfo=UTC))
    # And today, without daylight saving: 10:30 UTC on a November Monday is 07:30, closed.
    assert not hours.is_open(config, datetime(2025, 11, 3, 10, 30, tzinfo=UTC))


@pytest.mark.django_db
def test_it_follows_a_zone_with_daylight_saving_now(config) -> None:
    # given: a business in New York, whose clocks went forward on Sunday 2026-03-08
    config.timezone = "America/New_York"
    config.save()

    # then: Friday 08:00 was 13:00 UTC (EST), Monday 08:00 is 12:00 UTC (EDT)
    assert hours.next_opening(config, local(2026, 3, 5, 19, tz=NY)).astimezone(UTC) == datetime(
        2026, 3, 6, 13, tzinfo=UTC
    )
    assert hours.next_opening(config, local(2026, 3, 6, 19, tz=NY)).astimezone(UTC) == datetime(
        2026, 3, 7, 14, tzinfo=UTC
    )  # Saturday 09:00 EST
    assert hours.next_opening(config, local(2026, 3, 7, 14, tz=NY)).astimezone(UTC) == datetime(
        2026, 3, 9, 12, tzinfo=UTC
    )
    assert hours.is_open(config, datetime(2026, 3, 9, 12, 30, tzinfo=UTC))
    assert not hours.is_open(config, datetime(2026, 3, 6, 12, 30, tzinfo=UTC))


@pytest.mark.django_db
def test_an_opening_in_the_skipped_hour_is_the_instant_it_would_have_been(inbox) -> None:
    # given: open from 00:30 on Sundays; São Paulo skipped 00:00-01:00 on 2018-11-04
    bot = BotConfig.objects.create(inbox=inbox)
    BusinessHours.objects.create(bot=bot, weekday=6, opens=time(0, 30), closes=time(2))

    opening = hours.next_opening(bot, local(2018, 11, 3, 22))

    assert opening.astimezone(UTC) == datetime(2018, 11, 4, 3, 30, tzinfo=UTC)
    assert hours.is_open(bot, datetime(2018, 11, 4, 3, 45, tzinfo=UTC))


@pytest.mark.django_db
def test_a_day_open_until_midnight_runs_into_the_next(inbox) -> None:
    bot = BotConfig.objects.create(inbox=inbox)
    BusinessHours.objects.create(bot=bot, weekday=6, opens=time(20), closes=time(23, 59))
    BusinessHours.objects.create(bot=bot, weekday=0, opens=time(0), closes=time(2))

    assert hours.is_open(bot, local(2025, 6, 15, 23, 59))
    assert hours.is_open(bot, datetime(2025, 6, 16, 2, 59, 30, tzinfo=UTC))  # 23:59:30 Sunday
    assert hours.is_open(bot, local(2025, 6, 16, 1))
    assert hours.next_opening(bot, local(2025, 6, 16, 3)) == local(2025, 6, 22, 20)


@pytest.mark.django_db
def test_without_hours_there_is_no_next_opening(inbox) -> None:
    bot = BotConfig.objects.create(inbox=inbox)

    assert not hours.is_open(bot, local(2025, 6, 11, 10))
    assert hours.next_opening(bot, local(2025, 6, 11, 10)) is None


@pytest.mark.django_db
def test_it_describes_the_week_grouping_equal_days(config, english) -> None:
    Holiday.objects.create(bot=config, date=date(2025, 6, 20), name="Inventário")

    text = hours.describe_hours(config, at=local(2025, 6, 11, 10))

    assert "Monday to Friday: 08:00–12:00, 13:00–18:00" in text
    assert "Saturday: 09:00–13:00" in text
    assert "Sunday: closed" in text
    assert "Inventário" in text
    assert "America/Sao_Paulo" in text


def test_a_closed_day_reads_fechado_in_portuguese(config) -> None:
    from django.utils import translation

    with translation.override("pt-br"):
        text = hours.describe_hours(config, at=local(2025, 6, 11, 10))

    assert "domingo: fechado" in text.lower()
    assert "encerrada" not in text
