"""Page routes of the Provisioning section, under /orgs/<org>/provisioning/ (the SCIM protocol itself
is served under /scim/v2/, elsewhere). Names: `provisioning:tokens`, `provisioning:mappings`, ..."""

from django.urls import path

from scim import views

app_name = "provisioning"
urlpatterns = [
    path("tokens/", views.ScimTokenListView.as_view(), name="tokens"),
    path("tokens/<uuid:pk>/revoke/", views.ScimTokenRevokeView.as_view(), name="token-revoke"),
    path("mappings/", views.GroupMappingListView.as_view(), name="mappings"),
    path("mappings/<uuid:pk>/delete/", views.GroupMappingDeleteView.as_view(), name="mapping-delete"),
    path("log/", views.ProvisioningLogView.as_view(), name="log"),
]
