"""Schemathesis against the API's own schema, in-process through the WSGI app (no server), as
a supervisor with conversations in every state present: no request may end in a 500, and
every documented answer matches its schema.

Runs in the normal suite (and so in CI): for each operation, schemathesis's coverage phase
(edge values, missing and wrong fields, every other HTTP method) and then 10 generated
examples; about a thousand requests in all, some 40 s. Generated path ids are mapped, half of
the time, onto the objects made here, so the operations also run on real conversations,
messages and customers, not only on ids that answer 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from conversations.models import CannedResponse, Conversation, Label, Message, MessageTemplate

pytest_plugins = ["tests.console.actions_support"]

Status = Conversation.Status

# The schema as /api/schema/ serves it, built without a request (collection has no database).
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()

EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def _connection_kept_open() -> Iterator[None]:
    """The WSGI handler closes the database connection at the end of each request (Django's
    ``close_old_connections``): that would close the test's transaction too. Django's own test
    client disconnects it the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(_connection_kept_open: None, team, make_conversation, settings) -> SimpleNamespace:
    """Data for every endpoint to find: conversations in each state, messages, a customer,
    labels, canned responses and an approved template; a supervisor's token."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "sends": "100000/min"},
    }
    label = Label.objects.create(name="Urgente", inbox=team.inbox)
    conversations = [
        make_conversation(Status.QUEUED),
        make_conversation(Status.BOT),
        make_conversation(Status.ASSIGNED, assignee=team.ana),
        make_conversation(Status.ASSIGNED, assignee=team.supervisor),
        make_conversation(Status.CLOSED, assignee=team.ana),
    ]
    conversations[2].labels.add(label)
    for conversation in conversations:
        Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.IN,
            sender_kind=Message.SenderKind.CUSTOMER,
            type="text",
            text="Olá, <b>tudo bem</b>?",
            wamid=f"wamid.ST{conversation.pk}",
        )
    CannedResponse.objects.create(inbox=team.inbox, shortcut="ola", title="Olá", text="Olá!")
    MessageTemplate.objects.create(
        inbox=team.inbox,
        name="boas_vindas",
        language="pt_BR",
        status=MessageTemplate.Status.APPROVED,
        components=[{"type": "BODY", "text": "Olá {{1}}"}],
    )
    ids = {
        "conversations": [c.pk for c in conversations],
        "customers": [c.customer_id for c in conversations],
        "labels": [label.pk],
        "canned-responses": list(CannedResponse.objects.values_list("pk", flat=True)),
        "templates": list(MessageTemplate.objects.values_list("pk", flat=True)),
    }
    token = Token.objects.create(user=team.supervisor)
    return SimpleNamespace(ids=ids, headers={"Authorization": f"Token {token.key}"})


def _point_at_real_objects(case: Any, ids: dict[str, list[int]]) -> None:
    generated = (case.path_parameters or {}).get("id")
    if not isinstance(generated, int) or generated % 2:
        return
    collection = case.path.split("/")[2]
    known = ids.get(collection)
    if known:
        case.path_parameters["id"] = known[generated // 2 % len(known)]


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_it_answers_every_generated_request_without_a_server_error(case: Any, world: SimpleNamespace) -> None:
    _point_at_real_objects(case, world.ids)
    case.call_and_validate(
        headers=world.headers,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
