"""Paging of every list the admin API serves: cursor pages of `page_size` (default 50, at most
MAX_PAGE_SIZE), stable while rows are added, and a deep page costs what the first one does.

The answer is `{"next": url | null, "previous": url | null, "results": [...]}`; follow `next` until
it is null. Each list names its order in `list_ordering`.
"""

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
