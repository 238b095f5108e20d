"""Dates as Brazilians write them in a back office: 22/11/2026 17:03.

Django's pt-BR formats spell the month out ("22 de Novembro de 2026 às 17:03", capitalised,
which Portuguese does not do), too long for a list column beside the text it dates.
"""

from __future__ import annotations

DATE_FORMAT = "d/m/Y"
DATETIME_FORMAT = "d/m/Y H:i"
SHORT_DATE_FORMAT = "d/m/Y"
SHORT_DATETIME_FORMAT = "d/m/Y H:i"
