from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def empty(request: HttpRequest) -> HttpResponse:
    """No work at all: the ceiling for a request through the product's middleware stack."""
    return HttpResponse("OK", content_type="text/plain")
