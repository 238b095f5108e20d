from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by bench.settings: counts each process's SQL statements (bench/querycount.py)."""

    name = "bench"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from bench import querycount

        connection_created.connect(querycount.install, dispatch_uid="bench-querycount")
