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

A sample given as a one-element list marks a list value (``pk__in=ids``): the query is compiled
once per length bucket (1, 2, 4, ... ``MAX_LIST``), a list padded to its bucket with its last
value (``IN`` ignores repeats); a longer list runs the queryset as built. The live console's
rounds use this for their ``in_bulk`` reads (console/live.py). A ``values_list`` queryset
returns its tuples (its values, when ``flat``), aggregates of a ``values_list(...).annotate()``
included, in the order the ``values_list`` names them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import FlatValuesListIterable, ValuesListIterable, get_related_populators
from django.db.models.sql import UpdateQuery

# List values are compiled for these lengths (padded up to the next one); longer ones are not.
LIST_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MAX_LIST = LIST_BUCKETS[-1]


def _bucket(length: int) -> int | None:
    return next((bucket for bucket in LIST_BUCKETS if bucket >= length), None)


def _spread(sample: Any, count: int) -> list[Any]:
    """``count`` distinct values of the sample's type, for the elements of a list value."""
    if isinstance(sample, int) and not isinstance(sample, bool):
        return [sample - index for index in range(count)]
    if isinstance(sample, str):
        return [f"{sample}{index}" for index in range(count)]
    raise TypeError(f"no list samples can be made from {sample!r}")


class _Compiled:
    def __init__(self, queryset: QuerySet[Any], samples: Sequence[Any], alias: str) -> None:
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        # A datetime reaches the SQL as the backend adapts it (SQLite: a string in UTC).
        adapt = connections[alias].ops.adapt_datetimefield_value
        adapters = [adapt if isinstance(sample, dt.datetime) else None for sample in samples]
        placed = [
            sample if adapter is None else adapter(sample) for sample, adapter in zip(samples, adapters, strict=True)
        ]
        slots: list[int | None] = []
        for value in params:
            matches = [index for index, sample in enumerate(placed) if type(sample) is type(value) and sample == value]
            if len(matches) > 1:
                raise ValueError(f"ambiguous sample value {value!r}")
            slots.append(matches[0] if matches else None)
        missing = set(range(len(samples))) - {slot for slot in slots if slot is not None}
        if missing:
            raise ValueError(f"sample values {sorted(missing)} do not reach the SQL as they are")
        self.sql = sql
        self.params = list(params)
        self.slots = slots
        self.adapters = adapters
        self.compiler = compiler
        klass_info = compiler.klass_info
        self.values = queryset._iterable_class in (ValuesListIterable, FlatValuesListIterable)
        self.flat = queryset._iterable_class is FlatValuesListIterable
        if self.values:
            if queryset.query.extra_select:
                raise ValueError("values_list with extra() is not supported")
            return
        if klass_info is None:
            raise ValueError("only model instances and plain values_list are supported")
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in compiler.select[self.start : self.end]]
        self.related = get_related_populators(klass_info, compiler.select, alias)
        # Annotations come back as attributes, as Django's own iterable sets them.
        self.annotations = list(compiler.annotation_col_map.items())

    def run(self, values: Sequence[Any], using: str) -> list[Any]:
        values = [
            value if adapter is None else adapter(value) for value, adapter in zip(values, self.adapters, strict=True)
        ]
        slots = zip(self.params, self.slots, strict=True)
        params = [value if slot is None else values[slot] for value, slot in slots]
        with connections[using].cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if not rows:
            return []
        if self.values:
            found = list(self.compiler.results_iter(results=[rows], tuple_expected=True))
            return [row[0] for row in found] if self.flat else found
        objects = []
        for row in self.compiler.results_iter(results=[rows]):
            obj = self.model.from_db(using, self.init_list, row[self.start : self.end])
            for populator in self.related:
                populator.populate(row, obj)
            for name, index in self.annotations:
                setattr(obj, name, row[index])
            objects.append(obj)
        return objects


class CompiledQuery:
    """``build(*values)`` returns a queryset of model instances (or a plain ``values_list``)
    whose parameters are the given values, passed as they are (no lookup that transforms them,
    such as ``contains``); the ``samples`` are values of the same types that the constant
    parameters of the query never equal, a one-element list for a list value (its element an
    int or a str). Calling the CompiledQuery with real values returns the list of instances (or
    of tuples; of values when flat)."""

    def __init__(self, build: Callable[..., QuerySet[Any]], *samples: Any) -> None:
        self._build = build
        self._samples = samples
        self._lists = [index for index, sample in enumerate(samples) if isinstance(sample, list)]
        for index in self._lists:
            if len(samples[index]) != 1:
                raise ValueError("a list sample holds exactly one value")
        self._compiled: dict[tuple, _Compiled] = {}

    def __call__(self, *values: Any, using: str = DEFAULT_DB_ALIAS) -> list[Any]:
        if not self._lists:
            compiled = self._compiled.get((using,))
            if compiled is None:
                compiled = self._compiled[(using,)] = _Compiled(self._build(*self._samples), self._samples, using)
            return compiled.run(values, using)
        values = list(values)
        buckets = []
        for index in self._lists:
            items = list(dict.fromkeys(values[index]))
            if not items:
                return []
            bucket = _bucket(len(items))
            if bucket is None:
                # Longer than any bucket: the ORM as it is (rare; compiling it would not pay).
                values[index] = items
                return list(self._build(*values).using(using))
            values[index] = items + [items[-1]] * (bucket - len(items))
            buckets.append(bucket)
        key = (using, *buckets)
        compiled = self._compiled.get(key)
        if compiled is None:
            samples = list(self._samples)
            for index, bucket in zip(self._lists, buckets, strict=True):
                samples[index] = _spread(samples[index][0], bucket)
            flat_samples = _flatten(samples, self._lists)
            built = self._build(*samples)
            compiled = self._compiled[key] = _Compiled(built, flat_samples, using)
        flat_values = _flatten(values, self._lists)
        return compiled.run(flat_values, using)

    def one(self, *values: Any, using: str = DEFAULT_DB_ALIAS) -> Any | None:
        """The first row for these values, or None (a query on a primary key)."""
        rows = self(*values, using=using)
        return rows[0] if rows else None


def _flatten(values: Sequence[Any], lists: Sequence[int]) -> list[Any]:
    """The values with each list value's elements in its place, in order."""
    flat: list[Any] = []
    for index, value in enumerate(values):
        if index in lists:
            flat.extend(value)
        else:
            flat.append(value)
    return flat


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
