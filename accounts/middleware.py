from django.utils import timezone

from accounts.policy import LAST_SEEN_KEY

# Writing "last seen" on every request would make every read a write; a minute is precise enough
# for idle timeouts measured in minutes.
LAST_SEEN_RESOLUTION = 60


class SessionActivityMiddleware:
    """Tracks when a signed-in session was last active.

    Sets `request.iam_idle_seconds` (time since the previous request) for the guard's per-org idle
    timeout, then records this request as the latest activity (at most once a minute).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.iam_idle_seconds = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = timezone.now().timestamp()
            last_seen = request.session.get(LAST_SEEN_KEY)
            if last_seen:
                request.iam_idle_seconds = now - last_seen
            if not last_seen or now - last_seen >= LAST_SEEN_RESOLUTION:
                request.session[LAST_SEEN_KEY] = now
        return self.get_response(request)
