"""The permission catalogue: the one vocabulary every guard, role and API key uses.

Nothing else in the code base invents permission strings. Each member carries its category (for the
role editor's grouping) and a description that owners read when they build a custom role.
"""

from enum import StrEnum

from core.errors import Invalid


class Perm(StrEnum):
    category: str
    description: str

    def __new__(cls, value: str, category: str, description: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.category = category
        member.description = description
        return member

    ORG_READ = "org:read", "Organization", "See the organization's name and settings."
    ORG_WRITE = "org:write", "Organization", "Rename the organization and change its settings."
    ORG_DELETE = "org:delete", "Organization", "Delete the organization and everything in it."

    MEMBER_READ = "member:read", "Members", "List members and see their roles."
    MEMBER_WRITE = "member:write", "Members", "Add, suspend and remove members, change their roles."

    TEAM_READ = "team:read", "Teams", "List teams and their members."
    TEAM_WRITE = "team:write", "Teams", "Create, change and delete any team and its members."

    ROLE_READ = "role:read", "Roles", "List roles and the permissions they grant."
    ROLE_WRITE = "role:write", "Roles", "Create, change and delete custom roles."

    API_KEY_READ = "api_key:read", "API keys", "List API keys (never their secrets)."
    API_KEY_WRITE = "api_key:write", "API keys", "Create and revoke organization API keys."

    AGENT_READ = "agent:read", "Agents", "List agents and their settings."
    AGENT_WRITE = "agent:write", "Agents", "Register, change and revoke agents."
    AGENT_CREDENTIALS = (
        "agent:credentials", "Agents", "Create and rotate agent client secrets.",
    )

    CONNECTION_READ = "connection:read", "Connections", "List downstream services (audiences)."
    CONNECTION_WRITE = "connection:write", "Connections", "Register and change downstream services."
    CONNECTION_USE = (
        "connection:use", "Connections", "Give agents you own the scopes of registered downstream services.",
    )

    RUN_READ = "run:read", "Runs", "See agent task runs."
    RUN_WRITE = "run:write", "Runs", "Start and terminate agent task runs."

    TRUST_READ = "trust:read", "Trust", "See trust scores, attestations and dispatch gates."
    TRUST_WRITE = "trust:write", "Trust", "Change dispatch gates and record attestations."
    TRUST_APPROVE = "trust:approve", "Trust", "Approve or deny runs that a dispatch gate escalated."

    SSO_READ = "sso:read", "Single sign-on", "See SAML and OIDC configuration."
    SSO_WRITE = "sso:write", "Single sign-on", "Change SAML and OIDC configuration."

    SCIM_READ = "scim:read", "Provisioning", "See SCIM settings and tokens (never secrets)."
    SCIM_WRITE = "scim:write", "Provisioning", "Issue and revoke SCIM tokens."

    POLICY_READ = "policy:read", "Security policy", "See the organization's security policy."
    POLICY_WRITE = "policy:write", "Security policy", "Change passwords, MFA, session and lockout policy."

    AUDIT_READ = "audit:read", "Audit", "Read and verify the audit log."
    ACCESS_REVIEW_EXPORT = (
        "access_review:export", "Audit", "Download the access-review export of every principal.",
    )

    BILLING_READ = "billing:read", "Billing", "See the subscription and invoices."
    BILLING_WRITE = "billing:write", "Billing", "Change the subscription and payment details."


ALL_PERMS: frozenset[Perm] = frozenset(Perm)


def perms_from_strings(values) -> frozenset[Perm]:
    """Catalogue members named by `values`; strings no longer in the catalogue grant nothing."""
    known = Perm._value2member_map_
    return frozenset(known[v] for v in values if v in known)


def perms_validate(values) -> list[Perm]:
    """Catalogue members named by `values`, sorted; Invalid naming each unknown string."""
    known = Perm._value2member_map_
    unknown = [v for v in values if v not in known]
    if unknown:
        raise Invalid(
            "Unknown permissions.", fields={"permissions": [f"Unknown permission: {v}" for v in unknown]}
        )
    return sorted({known[v] for v in values})


def catalogue_by_category() -> dict[str, list[Perm]]:
    grouped: dict[str, list[Perm]] = {}
    for perm in Perm:
        grouped.setdefault(perm.category, []).append(perm)
    return grouped
