"""Mounted at ``/demo/`` (config/urls.py); every view 404s unless ``settings.DEMO_ENABLED``."""

from __future__ import annotations

from django.urls import path, re_path

from demo import graph, phone

app_name = "demo"

# The Graph API stand-in: ``WHATSAPP_GRAPH_URL`` is ``<site>/demo/graph/v24.0``, and the client
# appends ``/<node>/<edge>`` with no trailing slash, as Meta's paths have none.
_GRAPH = r"^graph/(?P<version>v\d+\.\d+)/(?P<node>[\w.-]+)"

urlpatterns = [
    path("phone/", phone.phone, name="phone"),
    path("phone/chat/", phone.chat_fragment, name="chat"),
    path("phone/send/", phone.send, name="send"),
    path("phone/media/<int:message_id>/", phone.media, name="media"),
    path("graph/files/<str:media_id>/", graph.download, name="graph-file"),
    re_path(_GRAPH + r"/messages/?$", graph.messages, name="graph-messages"),
    re_path(_GRAPH + r"/media/?$", graph.upload, name="graph-upload"),
    re_path(_GRAPH + r"/message_templates/?$", graph.templates, name="graph-templates"),
    re_path(_GRAPH + r"/?$", graph.node, name="graph-node"),
]
