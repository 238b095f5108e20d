"""Brazil's national holidays (Lei 662/1949, Lei 6.802/1980, Lei 9.093/1995, Lei 14.759/2023),
computed for any year. Carnival and Corpus Christi are optional days off ("ponto facultativo"),
not holidays: a business that closes on them adds them as its own."""

from __future__ import annotations

from datetime import date, timedelta

FIRST_YEAR = 2025
LAST_YEAR = 2040


def easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


def national_holidays(year: int) -> list[tuple[date, str]]:
    """(date, name in Portuguese) for every national holiday of ``year``, in date order."""
    days = [
        (date(year, 1, 1), "Confraternização Universal"),
        (easter(year) - timedelta(days=2), "Sexta-feira Santa"),
        (date(year, 4, 21), "Tiradentes"),
        (date(year, 5, 1), "Dia do Trabalho"),
        (date(year, 9, 7), "Independência do Brasil"),
        (date(year, 10, 12), "Nossa Senhora Aparecida"),
        (date(year, 11, 2), "Finados"),
        (date(year, 11, 15), "Proclamação da República"),
        (date(year, 12, 25), "Natal"),
    ]
    if year >= 2024:
        days.append((date(year, 11, 20), "Dia Nacional de Zumbi e da Consciência Negra"))
    return sorted(days)
