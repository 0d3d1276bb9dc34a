"""The composition root of every route: each app exports its own, and they are put together here."""

from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import audit_names as accounts_names
from accounts.attention import PEOPLE
from agents import audit_names as agents_names
from agents.attention import AGENTS
from audit.activity import SIGNINS, TOKENS, security_events_recent
from audit.naming import Naming
from audit.urls import audit_pages
from iam_project.api_urls import POLICY_SECTIONS
from rbac import audit_names as rbac_names
from scim import audit_names as scim_names
from scim.attention import SCIM
from sso import audit_names as sso_names
from sso.attention import SSO
from trust import audit_names as trust_names
from trust.api import authzen_evaluation, authzen_evaluations, authzen_metadata
from trust.attention import TRUST, TRUST_LEVELS
from trust.views import signals_endpoint
from web.overview import OrgOverviewView
from web.policy import SecurityPolicyPageView
from web.routing import org_pages

# The security page composes every app's settings, so it is routed here (namespace "policy").
policy_pages = ([org_pages(path("security/", SecurityPolicyPageView.as_view(sections=POLICY_SECTIONS),
                                name="security-policy"))], "policy")

# The org's home page: each app's attention items and figures (core.attention), composed here.
overview_pages = ([org_pages(path("", OrgOverviewView.as_view(
    attention=(PEOPLE, AGENTS, TRUST, SSO, SCIM), figures=(TOKENS, TRUST_LEVELS, SIGNINS),
    recent_events=security_events_recent), name="overview"))], "console")

# The audit log names each entry's actor and target as the app that owns that kind of object does.
AUDIT_NAMING = Naming((*accounts_names.NAMERS, *rbac_names.NAMERS, *agents_names.NAMERS, *trust_names.NAMERS,
                       *scim_names.NAMERS, *sso_names.NAMERS))


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/orgs/<str:org>/", include("iam_project.api_urls")),
    path("scim/v2/", include("scim.protocol.urls")),
    # A downstream service's report about an agent, beside the OAuth endpoints it authenticates like.
    path("oauth/<str:org>/signals", signals_endpoint, name="trust-signals"),
    # OpenID AuthZEN 1.0: the dispatch decision for a service (its connection), and its PDP metadata.
    path("authzen/<str:org>/access/v1/evaluation", authzen_evaluation, name="authzen-evaluation"),
    path("authzen/<str:org>/access/v1/evaluations", authzen_evaluations, name="authzen-evaluations"),
    path(".well-known/authzen-configuration/authzen/<str:org>", authzen_metadata, name="authzen-metadata"),
    path("", include("agents.oauth_urls")),
    path("", include("accounts.urls")),
    path("", include("rbac.urls")),
    path("", include("agents.urls")),
    path("", include("trust.urls")),
    path("", include(audit_pages(naming=AUDIT_NAMING))),
    path("", include("scim.urls")),
    path("", include("sso.urls")),
    path("", include(policy_pages)),
    path("", include(overview_pages)),
]

handler400 = "web.error_views.bad_request"
handler404 = "web.error_views.not_found"
handler500 = "web.error_views.server_error"
