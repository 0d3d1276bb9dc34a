"""Every app's owner-facing pages live under /orgs/<org>/; each app's urls.py wraps its own."""

from django.urls import include, path


def org_pages(*patterns):
    """One route prefix for a group of org pages; the page mixin resolves `org` before any handler."""
    return path("orgs/<str:org>/", include(list(patterns)))
