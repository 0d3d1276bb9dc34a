"""Site-wide error responses: JSON in the contract's shape under /api/, plain pages elsewhere.

Neither ever includes a traceback or internal detail (DEBUG is off in production).
"""

from django.http import JsonResponse
from django.shortcuts import render


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse({"error": "not_found", "detail": "Not found."}, status=404)
    return render(request, "errors/404.html", status=404)


def server_error(request):
    if _is_api(request):
        body = {"error": "server_error", "detail": "The server could not complete the request."}
        return JsonResponse(body, status=500)
    return render(request, "errors/500.html", status=500)


def bad_request(request, exception=None):
    if _is_api(request):
        return JsonResponse({"error": "bad_request", "detail": "Bad request."}, status=400)
    return render(request, "errors/400.html", status=400)
