"""Org pages for the audit log and the access review. The log names actors and targets with every app's
namers (audit.naming), so iam_project includes `audit_pages(naming=...)` rather than this module."""

from django.urls import path, re_path

from audit import views
from audit.naming import Naming
from web.routing import org_pages

app_name = "audit"


def audit_pages(*, naming: Naming):
    kwargs = {"naming": naming}
    return ([org_pages(
        path("audit/", views.AuditLogView.as_view(**kwargs), name="audit-log"),
        path("audit/<int:seq>/", views.AuditEntryView.as_view(**kwargs), name="audit-entry"),
        re_path(r"^audit/export\.(?P<fmt>csv|jsonl)$", views.AuditExportView.as_view(**kwargs),
                name="audit-export"),
        path("access-review/", views.AccessReviewView.as_view(), name="access-review"),
    )], app_name)


urlpatterns = audit_pages(naming=Naming())[0]
