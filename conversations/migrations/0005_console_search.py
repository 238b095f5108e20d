"""The console's search and lists on PostgreSQL (nothing on SQLite, where search is icontains).

- ``unaccent`` (trusted since PostgreSQL 13: the database owner may create it) and ``pg_trgm``
  (trusted too) extensions.
- Text search configurations: ``portuguese_unaccent`` (accents folded, then the Portuguese
  stemmer) for message text, ``simple_unaccent`` (accents folded, no stemming) for names, so
  "acucar" finds "açúcar" and "Joao" finds "João".
- GIN indexes on exactly the expressions ``console/search.py`` queries (an expression index is
  used only when the query's expression is the same), a trigram index on phones (digits
  "contains"), and a global recency index for admins' and supervisors' "all" list, which
  otherwise sorts every conversation of their inboxes for each page, and a partial index on
  the open conversations for the counters.

Raw SQL on purpose: the expression indexes are not in the models' ``Meta`` (this migration
changes no field), so ``makemigrations`` sees nothing to do.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS portuguese_unaccent",
    "CREATE TEXT SEARCH CONFIGURATION portuguese_unaccent (COPY = portuguese)",
    "ALTER TEXT SEARCH CONFIGURATION portuguese_unaccent "
    "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, portuguese_stem",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS simple_unaccent",
    "CREATE TEXT SEARCH CONFIGURATION simple_unaccent (COPY = simple)",
    "ALTER TEXT SEARCH CONFIGURATION simple_unaccent ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple",
    # Message text search (console/search.py: MessageDocument).
    "CREATE INDEX IF NOT EXISTS conv_message_search_idx ON conversations_message "
    "USING gin (to_tsvector('portuguese_unaccent'::regconfig, text || ' ' || caption))",
    # Customer name search (console/search.py: NameDocument).
    "CREATE INDEX IF NOT EXISTS conv_customer_name_search_idx ON conversations_customer "
    "USING gin (to_tsvector('simple_unaccent'::regconfig, name))",
    # Phone digits anywhere in the number ("98765" finds +55 11 98765-4321): LIKE '%...%'.
    "CREATE INDEX IF NOT EXISTS conv_customer_phone_trgm_idx ON conversations_customer "
    "USING gin (phone gin_trgm_ops)",
    # "All" for admins and for supervisors of several inboxes: newest activity first across
    # inboxes, read in index order until a page is full (the per-inbox index cannot).
    "CREATE INDEX IF NOT EXISTS conv_conversation_last_idx ON conversations_conversation "
    "(last_message DESC, id DESC)",
    # Counters (console.lists.live_tallies): only the open conversations, whatever the
    # size of the history; the predicate is the one ConversationQuerySet.live() writes.
    "CREATE INDEX IF NOT EXISTS conv_conversation_live_idx ON conversations_conversation "
    "(inbox_id, status, assignee_id) WHERE status IN ('bot', 'queued', 'assigned')",
]
BACKWARD = [
    "DROP INDEX IF EXISTS conv_conversation_live_idx",
    "DROP INDEX IF EXISTS conv_conversation_last_idx",
    "DROP INDEX IF EXISTS conv_customer_phone_trgm_idx",
    "DROP INDEX IF EXISTS conv_customer_name_search_idx",
    "DROP INDEX IF EXISTS conv_message_search_idx",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS simple_unaccent",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS portuguese_unaccent",
    # The extensions stay: other schemas may use them.
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
        ("conversations", "0004_console"),
    ]

    operations = [
        migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False),
    ]
