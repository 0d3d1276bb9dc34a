from django.urls import re_path

from scim.protocol import views

app_name = "scim"

# A trailing slash is accepted everywhere: IdPs differ on it, and a redirect would lose the body.
urlpatterns = [
    re_path(r"^ServiceProviderConfigs?/?$", views.service_provider_config, name="service-provider-config"),
    re_path(r"^ResourceTypes/?$", views.resource_types, name="resource-types"),
    re_path(r"^ResourceTypes/(?P<name>[^/]+)/?$", views.resource_types, name="resource-type"),
    re_path(r"^Schemas/?$", views.schemas, name="schemas"),
    re_path(r"^Schemas/(?P<urn>[^/]+)/?$", views.schemas, name="schema"),
    re_path(r"^Users/?$", views.users, name="users"),
    re_path(r"^Users/\.search/?$", views.users_search, name="users-search"),
    re_path(r"^Users/(?P<pk>[^/]+)/?$", views.user, name="user"),
    re_path(r"^Groups/?$", views.groups, name="groups"),
    re_path(r"^Groups/\.search/?$", views.groups_search, name="groups-search"),
    re_path(r"^Groups/(?P<pk>[^/]+)/?$", views.group, name="group"),
    re_path(r"^\.search/?$", views.root_search, name="search"),
    re_path(r"^(?:Bulk|Me)/?$", views.unsupported, name="unsupported"),
    re_path(r"^.*$", views.unknown, name="unknown"),
]
