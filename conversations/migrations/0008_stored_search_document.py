"""The console's search reads each message's text search document from a stored column, and
the queue has an index in its own order (PostgreSQL only, like 0005).

A search for a common word walks a list and checks each conversation's own messages
(console/search.py). With the document as an index expression, each check computed
``to_tsvector`` again for every message of the conversation: about 70 microseconds a
conversation, 60 ms for a search of a queue of 900 (docs/benchmarks.md, "Console pages").
``search_doc`` is computed once, when the row is written (a generated column, so every
INSERT and UPDATE keeps it right without application code), and the GIN index is built on
it instead of on the expression, so a message's document is computed once, not twice.

The column is not a model field: the ORM never loads it (a message is read far more often
than searched), and SQLite (the embedded mode, where search is ``icontains``) has no
``to_tsvector``. Adding it rewrites the messages table once.

``conv_conversation_queue_idx`` is the queue's order (``longest_waiting_first``) over the
waiting conversations only; SQLite cannot index ``NULLS LAST``.
"""

from django.db import migrations

DOCUMENT = "to_tsvector('portuguese_unaccent'::regconfig, text || ' ' || caption)"

FORWARD = [
    f"ALTER TABLE conversations_message ADD COLUMN IF NOT EXISTS search_doc tsvector GENERATED ALWAYS AS ({DOCUMENT}) STORED",
    "CREATE INDEX IF NOT EXISTS conv_message_search_doc_idx ON conversations_message USING gin (search_doc)",
    "DROP INDEX IF EXISTS conv_message_search_idx",
    "CREATE INDEX IF NOT EXISTS conv_conversation_queue_idx ON conversations_conversation "
    "(priority DESC, queued_since ASC NULLS LAST, last_inbound ASC NULLS LAST, opened, id) "
    "WHERE status = 'queued'",
    "ANALYZE conversations_message",
]

BACKWARD = [
    "DROP INDEX IF EXISTS conv_conversation_queue_idx",
    f"CREATE INDEX IF NOT EXISTS conv_message_search_idx ON conversations_message USING gin ({DOCUMENT})",
    "DROP INDEX IF EXISTS conv_message_search_doc_idx",
    "ALTER TABLE conversations_message DROP COLUMN IF EXISTS search_doc",
]


def _run(statements: list[str]):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0007_queue_priority_transcript_reopen"),
    ]

    operations = [
        migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False),
    ]
