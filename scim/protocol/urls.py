from django.urls import re_path

from scim.protocol import discovery, groups, listing, users

app_name = "scim"

# A trailing slash is accepted everywhere: IdPs differ on it, and a redirect would lose the body.
urlpatterns = [
    re_path(r"^ServiceProviderConfigs?/?$", discovery.service_provider_config_endpoint,
            name="service-provider-config"),
    re_path(r"^ResourceTypes/?$", discovery.resource_types_endpoint, name="resource-types"),
    re_path(r"^ResourceTypes/(?P<name>[^/]+)/?$", discovery.resource_types_endpoint, name="resource-type"),
    re_path(r"^Schemas/?$", discovery.schemas_endpoint, name="schemas"),
    re_path(r"^Schemas/(?P<urn>[^/]+)/?$", discovery.schemas_endpoint, name="schema"),
    re_path(r"^Users/?$", users.users, name="users"),
    re_path(r"^Users/\.search/?$", users.users_search, name="users-search"),
    re_path(r"^Users/(?P<pk>[^/]+)/?$", users.user, name="user"),
    re_path(r"^Groups/?$", groups.groups, name="groups"),
    re_path(r"^Groups/\.search/?$", groups.groups_search, name="groups-search"),
    re_path(r"^Groups/(?P<pk>[^/]+)/?$", groups.group, name="group"),
    re_path(r"^\.search/?$", listing.root_search, name="search"),
    re_path(r"^(?:Bulk|Me)/?$", discovery.unsupported, name="unsupported"),
    re_path(r"^.*$", discovery.unknown, name="unknown"),
]
