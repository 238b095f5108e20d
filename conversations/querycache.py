"""Querysets compiled once per process and run again with new values: intake's hot reads.

Building and compiling a queryset costs far more CPU than running it: for the two SELECTs of
every stored message (the customer's open conversation with its customer, locked; "is this
wamid known, awaited or replied to?"), building the query and compiling its SQL was about half
of a worker's CPU per message, the database's answer a tenth (docs/benchmarks.md, "What a
processed event costs"). A ``CompiledQuery`` builds its queryset once with sample values,
keeps the SQL and where each sample sits among the parameters, and from then on only
substitutes the real values, runs the SQL and makes the model instances the way Django's own
iterable does (converters, ``select_related`` included). ``CompiledUpdate`` does the same for
the UPDATE of a conversation's times that follows. The SQL is still the ORM's, so it follows
the models; it is compiled per database connection alias.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql import UpdateQuery


class _Compiled:
    def __init__(self, queryset: QuerySet[Any], samples: Sequence[Any], alias: str) -> None:
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        slots: list[int | None] = []
        for value in params:
            matches = [index for index, sample in enumerate(samples) if type(sample) is type(value) and sample == value]
            if len(matches) > 1:
                raise ValueError(f"ambiguous sample value {value!r}")
            slots.append(matches[0] if matches else None)
        missing = set(range(len(samples))) - {slot for slot in slots if slot is not None}
        if missing:
            raise ValueError(f"sample values {sorted(missing)} do not reach the SQL as they are")
        self.sql = sql
        self.params = list(params)
        self.slots = slots
        self.compiler = compiler
        klass_info = compiler.klass_info
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in compiler.select[self.start : self.end]]
        self.related = get_related_populators(klass_info, compiler.select, alias)
        # Annotations come back as attributes, as Django's own iterable sets them.
        self.annotations = list(compiler.annotation_col_map.items())


class CompiledQuery:
    """``build(*values)`` returns a queryset of model instances whose parameters are the given
    values, passed as they are (no lookup that transforms them, such as ``contains``); the
    ``samples`` are values of the same types that the constant parameters of the query never
    equal. Calling the CompiledQuery with real values returns the list of instances."""

    def __init__(self, build: Callable[..., QuerySet[Any]], *samples: Any) -> None:
        self._build = build
        self._samples = samples
        self._compiled: dict[str, _Compiled] = {}

    def __call__(self, *values: Any, using: str = DEFAULT_DB_ALIAS) -> list[Model]:
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = _Compiled(self._build(*self._samples), self._samples, using)
        slots = zip(compiled.params, compiled.slots, strict=True)
        params = [value if slot is None else values[slot] for value, slot in slots]
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if not rows:
            return []
        objects = []
        for row in compiled.compiler.results_iter(results=[rows]):
            obj = compiled.model.from_db(using, compiled.init_list, row[compiled.start : compiled.end])
            for populator in compiled.related:
                populator.populate(row, obj)
            for name, index in compiled.annotations:
                setattr(obj, name, row[index])
            objects.append(obj)
        return objects


class CompiledUpdate:
    """``UPDATE <model> SET <fields> WHERE pk = ...`` compiled once per connection alias; each
    call prepares its values the way Django's UPDATE compiler does (``get_db_prep_save``).
    Returns the number of rows updated. For plain fields only (no expressions, no relations)."""

    def __init__(self, model: type[Model], fields: Sequence[str]) -> None:
        self._model = model
        self._fields = [model._meta.get_field(name) for name in fields]
        self._sql: dict[str, str] = {}

    def __call__(self, pk: Any, *values: Any, using: str = DEFAULT_DB_ALIAS) -> int:
        connection = connections[using]
        sql = self._sql.get(using)
        if sql is None:
            query = UpdateQuery(self._model)
            query.add_update_values({field.name: value for field, value in zip(self._fields, values, strict=True)})
            query.add_filter("pk", pk)
            sql, params = query.get_compiler(using=using).as_sql()
            if len(params) != len(self._fields) + 1:
                raise ValueError(f"unexpected parameters for {sql!r}: {params!r}")
            self._sql[using] = sql
        params = [
            field.get_db_prep_save(value, connection=connection)
            for field, value in zip(self._fields, values, strict=True)
        ]
        params.append(self._model._meta.pk.get_db_prep_value(pk, connection))
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount
