"""Org pages for trust: the trust policy and gates, trust roots, the approvals queue."""

from web.routing import org_pages

app_name = "trust"
urlpatterns = [
    org_pages(),
]
