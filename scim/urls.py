"""Page routes of the Provisioning section, under /orgs/<org>/provisioning/ (the SCIM protocol itself
is served under /scim/v2/, from scim/protocol/urls.py). Names: `provisioning:tokens`, ..."""

from django.urls import path

from scim import views
from web.routing import org_pages

app_name = "provisioning"
urlpatterns = [
    org_pages(
        path("provisioning/tokens/", views.ScimTokenListView.as_view(), name="tokens"),
        path("provisioning/tokens/<uuid:pk>/revoke/", views.ScimTokenRevokeView.as_view(),
             name="token-revoke"),
        path("provisioning/mappings/", views.GroupMappingListView.as_view(), name="mappings"),
        path("provisioning/mappings/<uuid:pk>/delete/", views.GroupMappingDeleteView.as_view(),
             name="mapping-delete"),
        path("provisioning/log/", views.ProvisioningLogView.as_view(), name="log"),
    ),
]
