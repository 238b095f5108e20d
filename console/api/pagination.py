"""Pagination of the API's lists.

Messages come a page at a time from the newest, each page in reading order (newest last),
like the console's timeline: ``older`` links to the page before, ``newer`` back. A cursor,
not an offset: new messages arriving while someone pages back do not shift the pages.
"""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class MessagePagination(CursorPagination):
    # (conversation, wa_timestamp, id) is conv_message_conv_ts_idx: every page is an index walk.
    ordering = ("-wa_timestamp", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"older": self.get_next_link(), "newer": self.get_previous_link(), "results": data[::-1]})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "older": {**link, "description": "The page of older messages, or null at the first message."},
                "newer": {**link, "description": "The page of newer messages, or null at the newest."},
                "results": schema,
            },
        }
