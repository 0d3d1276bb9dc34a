from audit.context import context_from_request, current_context


class RequestContextMiddleware:
    """Sets the audit request context for the duration of a request and echoes X-Request-ID."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        context = context_from_request(request)
        request.audit_context = context
        token = current_context.set(context)
        try:
            response = self.get_response(request)
        finally:
            current_context.reset(token)
        response["X-Request-ID"] = context.correlation_id
        return response
