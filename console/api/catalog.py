"""The API's read-only lists: customers, canned responses, labels and message templates, and
the user's own token.

Customers are those with a conversation the user may see (``access.customers_for``); canned
responses, labels and templates are those of the user's inboxes (and the global ones).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Value
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from console.api import serializers as s
from console.api.views import DetailSerializer
from conversations import access
from conversations.models import CannedResponse, Conversation, Customer, Label, MessageTemplate

INBOX = OpenApiParameter(
    "inbox", int, description="Only those of this inbox (and, for labels and canned responses, the global ones)."
)
ID = OpenApiParameter("id", int, OpenApiParameter.PATH)
NOT_FOUND = {404: OpenApiResponse(DetailSerializer, description="None with this id among those this user may see.")}


def _inbox_param(request: Request) -> int | None:
    raw = request.query_params.get("inbox", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


class _ReadOnly(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = r"[0-9]+"


@extend_schema_view(
    list=extend_schema(
        summary="List customers",
        description="Customers with a conversation this user may see. Phones are masked for attendants.",
        parameters=[OpenApiParameter("search", str, description="Part of the customer's name.")],
    ),
    retrieve=extend_schema(
        summary="A customer", parameters=[ID], responses={200: s.CustomerDetailSerializer, **NOT_FOUND}
    ),
)
class CustomerViewSet(_ReadOnly):
    queryset = Customer.objects.none()

    def get_serializer_class(self) -> Any:
        return s.CustomerSerializer if self.action == "list" else s.CustomerDetailSerializer

    def get_queryset(self) -> Any:
        user = self.request.user
        qs = access.customers_for(user).order_by("name", "id")
        if access.is_admin(user):
            qs = qs.annotate(phone_full=Value(True))
        else:
            # The console's rule per conversation (timeline.may_see_phone), for a customer:
            # whole when they write to an inbox this user supervises.
            supervised = Conversation.objects.filter(
                customer_id=OuterRef("pk"), inbox_id__in=access.supervised_inbox_ids(user)
            )
            qs = qs.annotate(phone_full=Exists(supervised))
        name = self.request.query_params.get("search", "").strip()
        if name and self.action == "list":
            qs = qs.filter(name__icontains=name[:100].replace("\x00", ""))
        return qs


@extend_schema_view(
    list=extend_schema(summary="List canned responses", parameters=[INBOX]),
    retrieve=extend_schema(
        summary="A canned response", parameters=[ID], responses={200: s.CannedResponseSerializer, **NOT_FOUND}
    ),
)
class CannedResponseViewSet(_ReadOnly):
    serializer_class = s.CannedResponseSerializer
    queryset = CannedResponse.objects.none()

    def get_queryset(self) -> Any:
        inboxes = access.inboxes_for(self.request.user).values("pk")
        qs = CannedResponse.objects.filter(Q(inbox__isnull=True) | Q(inbox_id__in=inboxes)).order_by("shortcut", "id")
        inbox = _inbox_param(self.request)
        if inbox is not None and self.action == "list":
            qs = qs.filter(Q(inbox__isnull=True) | Q(inbox_id=inbox))
        return qs


@extend_schema_view(
    list=extend_schema(summary="List labels", parameters=[INBOX]),
    retrieve=extend_schema(summary="A label", parameters=[ID], responses={200: s.LabelSerializer, **NOT_FOUND}),
)
class LabelViewSet(_ReadOnly):
    serializer_class = s.LabelSerializer
    queryset = Label.objects.none()

    def get_queryset(self) -> Any:
        inboxes = access.inboxes_for(self.request.user).values("pk")
        qs = Label.objects.filter(Q(inbox__isnull=True) | Q(inbox_id__in=inboxes)).order_by("name", "id")
        inbox = _inbox_param(self.request)
        if inbox is not None and self.action == "list":
            qs = qs.filter(Q(inbox__isnull=True) | Q(inbox_id=inbox))
        return qs


@extend_schema_view(
    list=extend_schema(
        summary="List message templates",
        description="The approved WhatsApp templates of this user's inboxes (synced from Meta).",
        parameters=[INBOX],
    ),
    retrieve=extend_schema(
        summary="A message template", parameters=[ID], responses={200: s.MessageTemplateSerializer, **NOT_FOUND}
    ),
)
class MessageTemplateViewSet(_ReadOnly):
    serializer_class = s.MessageTemplateSerializer
    queryset = MessageTemplate.objects.none()

    def get_queryset(self) -> Any:
        inboxes = access.inboxes_for(self.request.user).values("pk")
        qs = MessageTemplate.objects.filter(inbox_id__in=inboxes, status=MessageTemplate.Status.APPROVED).order_by(
            "name", "language", "id"
        )
        inbox = _inbox_param(self.request)
        if inbox is not None and self.action == "list":
            qs = qs.filter(inbox_id=inbox)
        return qs


class TokenView(GenericAPIView):
    """The user's own API token. Only a browser session may make or revoke one (logged in with
    the password and, where required, the second factor): a token cannot mint tokens."""

    authentication_classes = [SessionAuthentication]
    serializer_class = s.TokenSerializer

    @extend_schema(
        summary="Make a new API token",
        description="Replaces the user's token, if any (the old one stops working). Session login only.",
        request=None,
        responses={201: s.TokenSerializer},
    )
    def post(self, request: Request) -> Response:
        with transaction.atomic():
            # Two requests at once: the second waits here, then replaces the first's token.
            get_user_model().objects.select_for_update().filter(pk=request.user.pk).first()
            Token.objects.filter(user=request.user).delete()
            token = Token.objects.create(user=request.user)
        return Response({"token": token.key}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke the API token",
        request=None,
        responses={204: OpenApiResponse(description="The token no longer works.")},
    )
    def delete(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
