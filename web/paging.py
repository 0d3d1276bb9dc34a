"""Search and paging for the console's list pages, by the admin API's own rules.

A list page shows one cursor page of its rows, in the order its API list uses (`list_ordering`), and
`?q=` matches the same fields the API's `?q=` does, so a person and an integration page through the
same rows the same way: `web.pagination.AdminCursorPagination` does both. A page costs two queries
whatever the org's size (the rows, and the one past the page that says whether there is a next).
A hand-made cursor that is no cursor is a 404, as the API answers it.

    page = list_page(request, Agent.objects.for_org(org), ordering="name", search_fields=("name",))
    render(..., {"page": page, "agents": page.rows})

and `{% include "includes/pager.html" %}` under the table draws the search box's state and the links.
"""

from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import urlsplit

from django.db.models import Q
from django.http import Http404
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from web.api import MAX_QUERY
from web.pagination import DEFAULT_PAGE_SIZE, AdminCursorPagination


@dataclass(frozen=True)
class ListPage:
    rows: list
    q: str  # the search as applied (NUL dropped, at most MAX_QUERY characters)
    next_url: str | None
    previous_url: str | None

    @property
    def paged(self) -> bool:
        return bool(self.next_url or self.previous_url)


def search_text(request) -> str:
    # NUL cannot be in a stored value (PostgreSQL refuses it in a query): drop it, as the API refuses it.
    return request.GET.get("q", "").replace("\x00", "").strip()[:MAX_QUERY]


def search_filter(text: str, fields) -> Q:
    match = Q()
    for name in fields:
        match |= Q(**{f"{name}__icontains": text})
    return match


def _relative(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def list_page(request, queryset, *, ordering: str, search_fields=(), page_size: int = DEFAULT_PAGE_SIZE,
              search=None) -> ListPage:
    """One page of `queryset` (already scoped to the org) in `ordering`, searched by `?q=`.

    `search_fields` are matched with icontains, as the API's; `search(text) -> Q` replaces them where a
    list searches otherwise (the API's `search_filter` override). `page_size` follows `?page_size=`
    within the API's maximum.
    """
    q = search_text(request)
    if q and (search or search_fields):
        queryset = queryset.filter(search(q) if search else search_filter(q, search_fields))
    paginator = AdminCursorPagination()
    paginator.page_size = page_size
    drf_request = Request(request)
    try:
        rows = paginator.paginate_queryset(queryset, drf_request, SimpleNamespace(list_ordering=ordering))
    except NotFound:
        raise Http404("That page of the list does not exist.") from None
    return ListPage(rows=list(rows), q=q, next_url=_relative(paginator.get_next_link()),
                    previous_url=_relative(paginator.get_previous_link()))
