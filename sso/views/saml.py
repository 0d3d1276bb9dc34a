"""SAML pages (being built)."""

from django.http import Http404


def _missing(request, org, connection):
    raise Http404


login_view = callback_view = backchannel_logout_view = metadata_view = acs_view = finish_view = _missing
