"""Paging of every list the admin API serves: cursor pages of `page_size` (default 50, at most
MAX_PAGE_SIZE), stable while rows are added, and a deep page costs what the first one does.

The answer is `{"next": url | null, "previous": url | null, "results": [...]}`; follow `next` until
it is null. Each list names its order in `list_ordering`. A cursor made by hand whose position is
no value of that order's column (a date that is no date, a 5,000-digit number, a NUL) is an invalid
cursor (404), as DRF answers one it cannot decode, rather than a query that fails.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class AdminCursorPagination(CursorPagination):
    page_size = DEFAULT_PAGE_SIZE
    max_page_size = MAX_PAGE_SIZE
    page_size_query_param = "page_size"
    ordering = "-created_at"

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "list_ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def paginate_queryset(self, queryset, request, view=None):
        self._queryset = queryset  # decode_cursor checks the position against its column
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not self._position_fits(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def _position_fits(self, position: str) -> bool:
        if "\x00" in position:  # PostgreSQL refuses NUL in a string, as a server error
            return False
        try:
            # Building the filter converts the value for the column (no query runs).
            self._queryset.filter(**{self.ordering[0].lstrip("-"): position})
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            return False
        return True
