"""The PostgreSQL connection as settings configure it."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
@pytest.mark.postgres
def test_it_turns_postgresqls_jit_compiler_off_on_its_connections() -> None:
    # given: a search estimated costly compiled for 700 ms before running for 75
    # (docs/benchmarks.md, "Console pages")
    with connection.cursor() as cursor:
        # when
        cursor.execute("SHOW jit")

        # then
        assert cursor.fetchone() == ("off",)
