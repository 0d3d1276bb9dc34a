"""The base views every org-scoped API view inherits. They scope before any handler runs.

`request.access` (the guard's answer) is resolved during DRF's permission check, before the
handler: a principal who is not in the URL's org gets 404, one who lacks the action's declared
permission gets 403. Querysets come only from the org-scoped manager, and subclasses may not
override `get_queryset`/`get_object` (checked when the class is created), so another org's object is
always a 404.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from core.permissions import Perm
from web.api_permissions import OrgAccessPermission

MAX_QUERY = 100
# A canonical UUID, the shape of every id in a path: anything else (36 dashes, say) is not routed.
UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _check_declarations(cls) -> None:
    for key, perm in cls.required.items():
        if not isinstance(perm, Perm):
            raise TypeError(f"{cls.__name__}.required[{key!r}] must be a Perm, not {perm!r}")


class OrgScopedMixin:
    """`required` maps each action (viewsets) or HTTP method (plain views) to a catalogue Perm."""

    required: dict[str, Perm] = {}
    # Every change from a browser session needs a fresh re-authentication (accounts.reauth); these
    # read actions do too.
    reauth_reads: frozenset[str] = frozenset()
    permission_classes = [OrgAccessPermission]

    def action_name(self) -> str:
        return getattr(self, "action", None) or self.request.method.lower()

    def required_permission(self) -> Perm | None:
        return self.required.get(self.action_name())

    @staticmethod
    def validated(serializer_class, data, partial: bool = False) -> dict:
        """Input through a serializer; invalid input raises (400 with per-field errors)."""
        serializer = serializer_class(data=data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @property
    def org(self):
        return self.request.access.org

    @property
    def access(self):
        return self.request.access


class OrgScopedViewSet(OrgScopedMixin, GenericViewSet):
    model = None
    lookup_value_regex = UUID_PATTERN
    # Lists are paged (web.pagination) in this order; `?q=` matches these fields, case-insensitively.
    list_ordering: str | None = None
    search_fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get_queryset", "get_object", "check_permissions", "initial"):
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} must not override {name}: scoping belongs to OrgScopedViewSet. "
                    "Narrow the queryset with scope(qs) instead."
                )
        _check_declarations(cls)

    def scope(self, queryset):
        """Hook for subclasses: narrow or annotate the already org-scoped queryset."""
        return queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no request org
            return self.model.objects.none()
        queryset = self.scope(self.model.objects.for_org(self.request.access.org))
        if self.action == "list":
            queryset = self.search(queryset)
        return queryset

    def search(self, queryset):
        """`?q=text`: rows whose search fields contain the text (at most MAX_QUERY characters)."""
        text = self.request.query_params.get("q", "").strip()
        if not text or not self.search_fields:
            return queryset
        if len(text) > MAX_QUERY:
            raise ValidationError({"q": [f"At most {MAX_QUERY} characters."]})
        if "\x00" in text:  # PostgreSQL refuses NUL in a string, as a server error
            raise ValidationError({"q": ["Null characters are not allowed."]})
        return queryset.filter(self.search_filter(text))

    def search_filter(self, text: str) -> Q:
        """What `?q=` matches: any search field containing the text. A view may narrow it."""
        match = Q()
        for name in self.search_fields:
            match |= Q(**{f"{name}__icontains": text})
        return match

    def get_object(self):
        lookup = self.lookup_url_kwarg or self.lookup_field
        opts = self.model._meta
        field = opts.pk if self.lookup_field == "pk" else opts.get_field(self.lookup_field)
        try:
            # A value the column cannot hold (a 5,000-digit number) names no row: 404, not a 500.
            value = field.to_python(self.kwargs[lookup])
        except DjangoValidationError:
            raise Http404 from None
        return get_object_or_404(self.get_queryset(), **{self.lookup_field: value})


class OrgScopedAPIView(OrgScopedMixin, APIView):
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "check_permissions" in cls.__dict__ or "initial" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not override the guard's hooks")
        _check_declarations(cls)
