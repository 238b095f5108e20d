"""The API's conversations and messages: the console's operations with the console's rules.

Every object is looked up through ``conversations.access`` (404 for what the user may not see,
403 for what they may read but not act on); ownership changes go through
``handoffs.services``, sends through ``conversations.outbound``, and who may write to the
customer is the console's own rule (``console.actions.reply_refusal``). A refusal changes
nothing and answers ``{"detail": <translated message>}`` with 403 (not this user), 409 (not
in this state) or 400 (a bad value).
"""

from __future__ import annotations

import datetime as dt
import mimetypes
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import (
    action,
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.exceptions import APIException, NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from console import search
from console.actions import _media_type, reply_refusal
from console.api import serializers as s
from console.api.pagination import MessagePagination
from console.api.throttles import SendThrottle
from conversations import access, outbound, services
from conversations.media import base_mime
from conversations.models import Conversation, Message, MessageTemplate
from handoffs import services as handoffs
from handoffs.services import TransitionRefused

Status = Conversation.Status

TRANSITION_STATUS = {
    TransitionRefused.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    TransitionRefused.CONFLICT: status.HTTP_409_CONFLICT,
    TransitionRefused.INVALID: status.HTTP_400_BAD_REQUEST,
}


class Refused(APIException):
    """A refusal with the translated message for the person in ``detail``."""

    def __init__(self, message: Any, status_code: int) -> None:
        super().__init__(detail=str(message))
        self.status_code = status_code


def refused(exc: Exception) -> Refused:
    if isinstance(exc, TransitionRefused):
        return Refused(exc.message, TRANSITION_STATUS.get(exc.code, status.HTTP_400_BAD_REQUEST))
    if isinstance(exc, outbound.SendRefused):
        return Refused(
            exc.message, status.HTTP_400_BAD_REQUEST if exc.reason == "invalid" else status.HTTP_409_CONFLICT
        )
    raise exc


class DetailSerializer(s.serializers.Serializer):
    detail = s.serializers.CharField(read_only=True)


def _refusals(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "A bad value.",
        403: "Not this user (or a second factor is pending).",
        404: "No such conversation among those this user may see.",
        409: "Not in this state (closed, someone else took it, window closed, inbox paused).",
    }
    return {
        code: OpenApiResponse(BAD_REQUEST if code == 400 else DetailSerializer, description=meaning[code])
        for code in codes
    }


# A refusal has ``detail``; a body that does not validate has its fields' errors instead.
BAD_REQUEST: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([AllowAny])
@authentication_classes([])
@throttle_classes([])
def not_found(request: Request) -> Response:
    raise NotFound


CONVERSATION_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The conversation's id.")


# --- Conversations -------------------------------------------------------------------------------


def _start_of(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in the business time zone (the dates people pick are local)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


@extend_schema_view(
    list=extend_schema(
        summary="List conversations",
        description="The conversations this user may see, newest activity first.",
        parameters=[s.ConversationFilterSerializer],
        responses={200: s.ConversationSerializer(many=True), **_refusals(400)},
    ),
    retrieve=extend_schema(
        summary="A conversation",
        parameters=[CONVERSATION_ID],
        responses={200: s.ConversationDetailSerializer, **_refusals(404)},
    ),
)
class ConversationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ConversationSerializer
    lookup_value_regex = r"[0-9]+"
    queryset = Conversation.objects.none()  # for the schema; get_queryset is what answers

    def get_queryset(self) -> Any:
        qs = access.conversations_for(self.request.user).recent_first().prefetch_related("labels")
        if self.action != "list":
            return qs
        params = s.ConversationFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        filters = params.validated_data
        # The filters only narrow what the user may see: an id from elsewhere finds nothing.
        if filters.get("status"):
            qs = qs.filter(status=filters["status"])
        if filters.get("inbox"):
            qs = qs.filter(inbox_id=filters["inbox"])
        if filters.get("assignee"):
            qs = qs.filter(assignee_id=filters["assignee"])
        if filters.get("label"):
            qs = qs.with_label(filters["label"])
        since, until = filters.get("since"), filters.get("until")
        qs = qs.active_between(
            _start_of(since) if since else None, _start_of(until + dt.timedelta(days=1)) if until else None
        )
        if filters.get("search", "").strip():
            qs = search.visible_matches(qs, filters["search"].strip())
        return qs

    def get_serializer_class(self) -> Any:
        return s.ConversationSerializer if self.action == "list" else s.ConversationDetailSerializer

    def get_object(self) -> Conversation:
        return access.get_conversation_for_user(self.request.user, self.kwargs["pk"])

    def _writable(self) -> Conversation:
        return access.get_conversation_for_user(self.request.user, self.kwargs["pk"], write=True)

    def _answer(self, conversation: Conversation) -> Response:
        # The services update the caller's copy in place. It is shown even when the user may no
        # longer see the conversation (they just handed it to a colleague): nothing they did not
        # already know.
        return Response(s.ConversationDetailSerializer(conversation, context=self.get_serializer_context()).data)

    def _change(self, conversation: Conversation, work: Any) -> Response:
        try:
            work(conversation)
        except TransitionRefused as exc:
            raise refused(exc) from None
        return self._answer(conversation)

    @extend_schema(
        summary="Take a conversation over",
        description="With the bot or in the queue: it becomes the user's.",
        parameters=[CONVERSATION_ID],
        request=None,
        responses={200: s.ConversationDetailSerializer, **_refusals(403, 404, 409)},
    )
    @action(detail=True, methods=["post"], url_path="take-over")
    def take_over(self, request: Request, pk: str) -> Response:
        return self._change(self._writable(), lambda c: handoffs.take_over(c, request.user))

    @extend_schema(
        summary="Transfer a conversation",
        description="To an attendant of its inbox, to the queue or to the bot.",
        parameters=[CONVERSATION_ID],
        request=s.TransferSerializer,
        responses={200: s.ConversationDetailSerializer, **_refusals(400, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def transfer(self, request: Request, pk: str) -> Response:
        conversation = self._writable()
        body = s.TransferSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        to, reason = body.validated_data["to"], body.validated_data["reason"]

        def work(conversation: Conversation) -> None:
            if to == "queue":
                handoffs.transfer_to_queue(conversation, request.user, reason=reason)
            elif to == "bot":
                handoffs.transfer_to_bot(conversation, request.user, reason=reason)
            else:
                assignee = (
                    access.assignable_users(conversation.inbox_id).filter(pk=body.validated_data["assignee"]).first()
                )
                if assignee is None:
                    raise TransitionRefused(
                        gettext("Choose an attendant of this inbox, the queue or the bot."), TransitionRefused.INVALID
                    )
                if conversation.status == Status.ASSIGNED:
                    handoffs.transfer_to_attendant(conversation, request.user, assignee, reason=reason)
                else:
                    handoffs.assign(conversation, request.user, assignee, reason=reason)

        return self._change(conversation, work)

    @extend_schema(
        summary="Close a conversation",
        parameters=[CONVERSATION_ID],
        request=s.CloseSerializer,
        responses={200: s.ConversationDetailSerializer, **_refusals(400, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str) -> Response:
        conversation = self._writable()
        body = s.CloseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        resolution = body.validated_data["resolution"].strip()

        def work(conversation: Conversation) -> None:
            with transaction.atomic():
                handoffs.close(conversation, request.user, resolution=resolution)
                services.set_resolution(conversation, resolution)

        return self._change(conversation, work)

    @extend_schema(
        summary="Reopen a closed conversation",
        parameters=[CONVERSATION_ID],
        request=s.ReopenSerializer,
        responses={200: s.ConversationDetailSerializer, **_refusals(400, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str) -> Response:
        conversation = self._writable()
        body = s.ReopenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._change(conversation, lambda c: handoffs.reopen(c, request.user, to=body.validated_data["to"]))


# --- Messages ---------------------------------------------------------------------------------------


class SendMixin:
    """Sends are throttled more strictly (``sends``) on top of the general limit."""

    request: Request

    def get_throttles(self) -> list[BaseThrottle]:
        throttles = super().get_throttles()  # type: ignore[misc]
        if self.request.method == "POST":
            throttles.append(SendThrottle())
        return throttles

    def writable_for_reply(self, pk: Any) -> Conversation:
        """The conversation, if this user may write to its customer now (the console's rule)."""
        user = self.request.user
        conversation = access.get_conversation_for_user(user, pk, write=True)
        refusal = reply_refusal(user, conversation, access.role_in(user, conversation.inbox_id))
        if refusal is not None:
            raise Refused(refusal.message, refusal.status)
        return conversation

    def created(self, message: Message) -> Response:
        message = Message.objects.select_related("sender").get(pk=message.pk)
        return Response(s.MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class MessageListView(SendMixin, GenericAPIView):
    serializer_class = s.MessageSerializer
    pagination_class = MessagePagination
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self) -> Any:
        conversation = access.get_conversation_for_user(self.request.user, self.kwargs["pk"])
        return Message.objects.filter(conversation=conversation).select_related("sender")

    @extend_schema(
        summary="Messages of a conversation",
        description="Newest page first; each page in reading order (newest last). Follow `older` to page back.",
        parameters=[CONVERSATION_ID],
        responses={200: s.MessageSerializer(many=True), **_refusals(404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Send a text message",
        parameters=[CONVERSATION_ID],
        request=s.SendTextSerializer,
        responses={201: s.MessageSerializer, **_refusals(400, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.writable_for_reply(pk)
        body = s.SendTextSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reply_to = None
        if body.validated_data.get("reply_to"):
            reply_to = Message.objects.filter(conversation=conversation, pk=body.validated_data["reply_to"]).first()
            if reply_to is None:
                raise Refused(gettext("That message is not in this conversation."), status.HTTP_400_BAD_REQUEST)
        try:
            message = outbound.send_text(
                conversation, body.validated_data["text"], sender=request.user, reply_to=reply_to
            )
        except outbound.SendRefused as exc:
            raise refused(exc) from None
        return self.created(message)


class SendMediaView(SendMixin, GenericAPIView):
    serializer_class = s.SendMediaSerializer
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Send a file",
        description="An image, video or audio when WhatsApp accepts the format as such, a document otherwise.",
        parameters=[CONVERSATION_ID],
        request={"multipart/form-data": s.SendMediaSerializer},
        responses={201: s.MessageSerializer, **_refusals(400, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.writable_for_reply(pk)
        body = s.SendMediaSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        mime = base_mime(upload.content_type or mimetypes.guess_type(upload.name or "")[0] or "")
        try:
            # Outside any transaction (the API does not use ATOMIC_REQUESTS): send_media writes
            # the file first and keeps it only if its row commits.
            message = outbound.send_media(
                conversation,
                media_type=_media_type(mime),
                file=upload,
                caption=body.validated_data["caption"].strip(),
                filename=upload.name or "",
                mime_type=mime,
                sender=request.user,
            )
        except outbound.SendRefused as exc:
            raise refused(exc) from None
        return self.created(message)


class SendTemplateView(SendMixin, GenericAPIView):
    serializer_class = s.SendTemplateSerializer

    @extend_schema(
        summary="Send a template message",
        description="One of the inbox's approved templates (the only kind WhatsApp accepts after the 24-hour "
        "window), with its components as in the Graph API.",
        parameters=[CONVERSATION_ID],
        request=s.SendTemplateSerializer,
        responses={201: s.MessageSerializer, **_refusals(400, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.writable_for_reply(pk)
        body = s.SendTemplateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        approved = MessageTemplate.objects.filter(
            inbox_id=conversation.inbox_id,
            status=MessageTemplate.Status.APPROVED,
            name=data["name"].strip(),
            language=data["language"].strip(),
        )
        if not approved.exists():
            raise Refused(gettext("Choose one of this inbox's approved templates."), status.HTTP_400_BAD_REQUEST)
        try:
            message = outbound.send_template(
                conversation, data["name"], data["language"], data["components"] or None, sender=request.user
            )
        except outbound.SendRefused as exc:
            raise refused(exc) from None
        return self.created(message)
