"""Org pages for the audit log and the access review."""

from django.urls import path

from audit import views
from web.routing import org_pages

app_name = "audit"
urlpatterns = [
    org_pages(
        path("audit/", views.AuditLogView.as_view(), name="audit-log"),
        path("access-review/", views.AccessReviewView.as_view(), name="access-review"),
    ),
]
