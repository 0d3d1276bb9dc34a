"""Org pages for trust: the trust policy and gates, trust roots, the approvals queue."""

from django.urls import path

from trust import pages
from web.routing import org_pages

app_name = "trust"
urlpatterns = [
    org_pages(
        path("approvals/", pages.ApprovalListView.as_view(), name="approvals"),
        # The link approval mails carry (trust.runs._tell_approvers).
        path("approvals/<uuid:pk>/", pages.ApprovalDetailView.as_view(), name="approval-detail"),
        path("trust/", pages.TrustPolicyView.as_view(), name="trust"),
        path("trust/gates/", pages.GateAddView.as_view(), name="gate-add"),
        path("trust/gates/<uuid:pk>/", pages.GateChangeView.as_view(), name="gate-change"),
        path("trust/gates/<uuid:pk>/delete/", pages.GateDeleteView.as_view(), name="gate-delete"),
        path("trust/roots/", pages.RootAddView.as_view(), name="root-add"),
        path("trust/roots/<uuid:pk>/remove/", pages.RootRemoveView.as_view(), name="root-remove"),
        path("trust/connections/<uuid:pk>/", pages.ConnectionMinTrustView.as_view(),
             name="connection-min-trust"),
    ),
]
