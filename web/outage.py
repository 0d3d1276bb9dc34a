"""A lost database is a 503 with Retry-After on every surface, never a 500.

This middleware answers for a view that raised a database outage; `web.error_views.server_error`
answers for one that escaped a middleware (a session loaded or saved while the database is down).
DRF views answer through `web.api_errors.exception_handler`. SCIM's dispatcher turns whatever its
views raise into its own error body, so an outage inside a SCIM view never reaches this middleware.
"""

from web.error_views import OUTAGE_ERRORS, unavailable


class DatabaseOutageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OUTAGE_ERRORS):
            return unavailable(request, exception)
        return None
