"""Routes of the admin REST API, under /api/v1/orgs/{org}/, and the views that compose several apps:
the security policy (each app's settings section) and the access review (each kind of principal)."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from accounts.api import POLICY_SECTION as ACCOUNTS_POLICY
from accounts.api import ApiKeyViewSet, MemberViewSet
from agents.api import POLICY_SECTION as AGENTS_POLICY
from agents.api import AgentViewSet, ConnectionViewSet, DelegationViewSet, RunViewSet
from agents.review import AGENTS
from audit.api import (
    AccessReviewExportView,
    AuditCheckpointKeysView,
    AuditCheckpointView,
    AuditEventViewSet,
    AuditVerifyView,
)
from rbac.api import PermissionCatalogueView, RoleViewSet, TeamViewSet
from rbac.review import API_KEYS, human_source
from scim.api import GroupMappingViewSet, ScimGroupViewSet, ScimTokenViewSet
from scim.review import SCIM_TOKENS, scim_member_names
from sso.api import DomainViewSet, SsoConnectionViewSet
from trust.api import (
    AgentTrustView,
    ApprovalViewSet,
    AttestationViewSet,
    TrustGateViewSet,
    TrustPolicyView,
    TrustRootViewSet,
)
from web.api import UUID_PATTERN
from web.policy import SecurityPolicyView

# The security page and API show every app's settings; the access review lists people (named as the
# org's IdP names them, where it provisions them), then agents (each followed by its live delegations),
# org API keys and SCIM tokens.
POLICY_SECTIONS = (ACCOUNTS_POLICY, AGENTS_POLICY)
ACCESS_REVIEW_SOURCES = (human_source(overlays=(scim_member_names,)), AGENTS, API_KEYS, SCIM_TOKENS)

router = SimpleRouter()
router.trailing_slash = "/?"  # integrators write both; neither should be a redirect
router.register("members", MemberViewSet, basename="member")
router.register("teams", TeamViewSet, basename="team")
router.register("roles", RoleViewSet, basename="role")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("audit/events", AuditEventViewSet, basename="audit-event")
router.register("agents", AgentViewSet, basename="agent")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("runs", RunViewSet, basename="run")
router.register("delegations", DelegationViewSet, basename="delegation")
router.register("scim-tokens", ScimTokenViewSet, basename="scim-token")
router.register("scim-mappings", GroupMappingViewSet, basename="scim-mapping")
router.register("scim-groups", ScimGroupViewSet, basename="scim-group")
router.register("trust-roots", TrustRootViewSet, basename="trust-root")
router.register("trust-gates", TrustGateViewSet, basename="trust-gate")
router.register("domains", DomainViewSet, basename="domain")
router.register("sso-connections", SsoConnectionViewSet, basename="sso-connection")
router.register("approvals", ApprovalViewSet, basename="approval")

app_name = "api"
urlpatterns = [
    re_path(r"^audit/verify/?$", AuditVerifyView.as_view(), name="audit-verify"),
    re_path(r"^audit/checkpoint/?$", AuditCheckpointView.as_view(), name="audit-checkpoint"),
    re_path(r"^audit/checkpoint-keys/?$", AuditCheckpointKeysView.as_view(), name="audit-checkpoint-keys"),
    re_path(r"^exports/access-review\.csv$", AccessReviewExportView.as_view(sources=ACCESS_REVIEW_SOURCES),
            name="access-review"),
    re_path(r"^permissions/?$", PermissionCatalogueView.as_view(), name="permissions"),
    re_path(r"^security-policy/?$", SecurityPolicyView.as_view(sections=POLICY_SECTIONS),
            name="security-policy"),
    re_path(r"^trust-policy/?$", TrustPolicyView.as_view(), name="trust-policy"),
    re_path(rf"^agents/(?P<agent>{UUID_PATTERN})/trust/?$", AgentTrustView.as_view(), name="agent-trust"),
    # Nested under its agent, so routed here rather than by the router (whose prefixes are literal).
    re_path(rf"^agents/(?P<agent>{UUID_PATTERN})/attestations/?$",
            AttestationViewSet.as_view({"get": "list", "post": "create"}), name="attestation-list"),
    *router.urls,
]
