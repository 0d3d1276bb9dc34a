"""Audit event catalogue. Codes are stable forever: add new members, never renumber or reuse.

Blocks: 1xx authentication, 2xx org, membership and roles, 3xx SSO, 4xx SCIM, 5xx agents and
tokens, 6xx trust, 7xx audit and exports. Each event names the `data` keys it may carry; anything
else is refused by `audit_record`, which keeps secrets out of the log by construction.
"""

from enum import Enum

_DECISION = ("agent", "run", "operation", "audiences", "decision", "score", "level", "reasons", "gates",
             "path", "approval", "dispatched_by")


class AuditEvent(Enum):
    # 1xx authentication
    LOGIN_SUCCEEDED = (101, "login.success", ("method",))
    LOGIN_FAILED = (102, "login.failure", ("reason", "method"))
    LOGIN_LOCKED = (103, "login.locked", ("reason", "locked_until"))
    LOGOUT = (104, "logout", ())
    LOGIN_THROTTLED = (105, "login.throttled", ("scope", "retry_after"))
    LOGIN_UNAVAILABLE = (106, "login.unavailable", ("reason",))
    MFA_CHALLENGE = (110, "mfa.challenge", ("methods",))
    MFA_SUCCEEDED = (111, "mfa.success", ("method",))
    MFA_FAILED = (112, "mfa.failure", ("method", "reason"))
    MFA_REPLAY = (113, "mfa.replay", ("method",))
    MFA_ENROLLED = (114, "mfa.enrolled", ("method", "device"))
    MFA_REMOVED = (115, "mfa.removed", ("method", "device"))
    RECOVERY_CODES_GENERATED = (116, "mfa.recovery_codes_generated", ("count",))
    PASSWORD_RESET_REQUESTED = (120, "password.reset_requested", ("delivered", "reason"))
    PASSWORD_RESET_COMPLETED = (121, "password.reset_completed", ("sessions_revoked",))
    PASSWORD_RESET_REJECTED = (122, "password.reset_rejected", ("reason",))
    PASSWORD_CHANGED = (123, "password.changed", ("sessions_revoked", "reason"))
    PASSWORD_REJECTED = (124, "password.rejected", ("reasons",))
    REAUTH_SUCCEEDED = (130, "reauth.success", ("method",))
    REAUTH_FAILED = (131, "reauth.failure", ("method", "reason"))
    REAUTH_REQUIRED = (132, "reauth.required", ("action",))
    SESSION_CREATED = (140, "session.created", ("session",))
    SESSION_REVOKED = (141, "session.revoked", ("session", "reason", "count"))
    SESSION_EXPIRED = (142, "session.expired", ("reason",))

    # 2xx organizations, members, teams, roles, API keys
    ORG_CREATED = (201, "org.created", ("slug", "name"))
    ORG_UPDATED = (202, "org.updated", ("fields",))
    MEMBER_ADDED = (210, "member.added", ("email", "role", "source", "status"))
    MEMBER_UPDATED = (211, "member.updated", ("role", "previous_role", "status", "previous_status", "source",
                                              "previous_source"))
    MEMBER_REMOVED = (212, "member.removed", ("email", "role"))
    MEMBER_ROLES_CHANGED = (213, "member.custom_roles_changed", ("added", "removed"))
    ACCOUNT_RELEASED = (214, "member.account_released", ("email", "password_cleared", "sessions_revoked"))
    INVITATION_SENT = (215, "invitation.sent", ("email", "role", "expires_at", "resend"))
    INVITATION_ACCEPTED = (216, "invitation.accepted", ("email", "via"))
    INVITATION_DECLINED = (217, "invitation.declined", ("email",))
    INVITATION_CANCELLED = (218, "invitation.cancelled", ("email",))
    INVITATION_REJECTED = (219, "invitation.rejected", ("reason",))
    MEMBER_SESSIONS_ENDED = (209, "member.sessions_ended", ("scope", "sessions_revoked"))
    TEAM_CREATED = (220, "team.created", ("name",))
    TEAM_UPDATED = (221, "team.updated", ("fields", "roles"))
    TEAM_DELETED = (222, "team.deleted", ("name",))
    TEAM_MEMBER_ADDED = (223, "team.member_added", ("member", "role"))
    TEAM_MEMBER_UPDATED = (224, "team.member_updated", ("member", "role", "previous_role"))
    TEAM_MEMBER_REMOVED = (225, "team.member_removed", ("member",))
    ROLE_CREATED = (230, "role.created", ("name", "permissions"))
    ROLE_UPDATED = (231, "role.updated", ("name", "permissions", "previous_permissions"))
    ROLE_DELETED = (232, "role.deleted", ("name",))
    API_KEY_CREATED = (240, "api_key.created", ("name", "permissions", "expires_at"))
    API_KEY_REVOKED = (241, "api_key.revoked", ("name",))
    API_KEY_REJECTED = (242, "api_key.rejected", ("reason",))
    PERMISSION_DENIED = (250, "access.denied", ("reason", "required", "action"))
    ESCALATION_DENIED = (251, "access.escalation_denied", ("reason", "missing"))
    LAST_OWNER_PROTECTED = (252, "access.last_owner_protected", ("action",))
    CROSS_TENANT_DENIED = (253, "access.cross_tenant_denied", ("object", "id"))
    POLICY_CHANGED = (260, "policy.changed", ("fields", "previous"))
    POLICY_DENIED = (261, "policy.denied", ("reason",))

    # 3xx single sign-on
    SSO_DOMAIN_ADDED = (301, "sso.domain_added", ("domain",))
    SSO_DOMAIN_VERIFIED = (302, "sso.domain_verified", ("domain",))
    SSO_DOMAIN_VERIFY_FAILED = (303, "sso.domain_verify_failed", ("domain", "reason"))
    SSO_DOMAIN_REMOVED = (304, "sso.domain_removed", ("domain", "verified"))
    SSO_CONNECTION_CREATED = (310, "sso.connection_created", ("name", "slug", "protocol"))
    SSO_CONNECTION_UPDATED = (311, "sso.connection_updated", ("name", "fields"))
    SSO_CONNECTION_DELETED = (312, "sso.connection_deleted", ("name", "slug"))
    SSO_CONNECTION_TESTED = (313, "sso.connection_tested", ("connection", "reason", "claims"))
    SSO_METADATA_REFRESHED = (314, "sso.metadata_refreshed", ("connection", "changed", "reason"))
    SSO_CERTIFICATE_EXPIRING = (315, "sso.certificate_expiring", ("connection", "fingerprint", "not_after"))
    SSO_LOGIN_STARTED = (320, "sso.login_started", ("connection", "protocol"))
    SSO_LOGIN_ACCEPTED = (321, "sso.login_accepted", ("connection", "protocol", "subject", "linked", "mfa"))
    SSO_LOGIN_REFUSED = (322, "sso.login_refused", ("connection", "protocol", "reason"))
    SSO_JIT_PROVISIONED = (323, "sso.jit_provisioned", ("connection", "email", "role"))
    SSO_MFA_STEP_UP = (324, "sso.mfa_step_up", ("connection", "reason"))
    SSO_LOGOUT = (325, "sso.backchannel_logout", ("connection", "sessions", "reason"))
    SSO_PASSWORD_REFUSED = (326, "sso.password_refused", ("reason",))

    # 4xx SCIM provisioning
    SCIM_TOKEN_CREATED = (401, "scim.token_created", ("name",))
    SCIM_TOKEN_REVOKED = (402, "scim.token_revoked", ("name", "grace_seconds", "reason"))
    SCIM_AUTH_FAILED = (403, "scim.auth_failed", ("reason",))
    SCIM_USER_CREATED = (410, "scim.user_created", ("user_name", "external_id", "email", "linked"))
    SCIM_USER_UPDATED = (411, "scim.user_updated", ("user_name", "fields", "method"))
    SCIM_USER_DEACTIVATED = (412, "scim.user_deactivated", ("user_name", "how"))
    SCIM_USER_REACTIVATED = (413, "scim.user_reactivated", ("user_name",))
    SCIM_USER_DELETED = (414, "scim.user_deleted", ("user_name",))
    SCIM_GROUP_CREATED = (420, "scim.group_created", ("display_name", "members"))
    SCIM_GROUP_UPDATED = (421, "scim.group_updated", ("display_name", "added", "removed", "fields", "method"))
    SCIM_GROUP_DELETED = (422, "scim.group_deleted", ("display_name", "members"))
    SCIM_REQUEST_REJECTED = (430, "scim.request_rejected",
                             ("method", "resource", "status", "scim_type", "detail"))
    SCIM_CROSS_TENANT_DENIED = (431, "scim.cross_tenant_denied", ("method", "resource", "id"))
    GROUP_MAPPING_CREATED = (440, "scim.mapping_created", ("group", "kind", "target", "team_role"))
    GROUP_MAPPING_DELETED = (441, "scim.mapping_deleted", ("group", "kind", "target"))
    MAPPING_GRANTED = (442, "scim.mapping_granted",
                       ("member", "group", "kind", "target", "team_role", "previous_role"))
    MAPPING_REVOKED = (443, "scim.mapping_revoked", ("member", "group", "kind", "target", "restored_role"))
    DEPROVISIONED = (450, "member.deprovisioned",
                     ("member", "how", "sessions_revoked", "api_keys_revoked", "agents_reassigned",
                      "agents_suspended", "scim_tokens_revoked", "account_deactivated",
                      "delegations_revoked"))

    # 5xx agents, credentials and tokens
    AGENT_CREATED = (501, "agent.created", ("name", "scopes", "audiences", "owners"))
    AGENT_GRANT_CHANGED = (502, "agent.grant_changed", ("scopes", "audiences", "previous_scopes",
                                                        "previous_audiences", "owners"))
    AGENT_SUSPENDED = (503, "agent.suspended", ())
    AGENT_RESUMED = (504, "agent.resumed", ())
    AGENT_REVOKED = (505, "agent.revoked", ("runs_cancelled",))
    AGENT_DELEGATES_CHANGED = (506, "agent.delegates_changed", ("may_delegate_to", "previous"))
    AGENT_TRUST_INPUTS_CHANGED = (507, "agent.trust_inputs_changed",
                                  ("approved_versions", "networks", "previous_approved_versions",
                                   "previous_networks"))
    AGENT_CONTAINED = (508, "agent.contained", ("score", "level", "floor", "reasons", "runs_ended"))
    SECRET_ISSUED = (510, "agent.secret_issued", ("secret",))
    SECRET_ROTATED = (511, "agent.secret_rotated", ("secret", "previous", "previous_expires_at"))
    SECRET_WINDOW_ENDED = (512, "agent.secret_window_ended", ("secret", "how"))
    CONNECTION_CREATED = (520, "connection.created", ("name", "audience", "scopes"))
    CONNECTION_UPDATED = (521, "connection.updated", ("name", "previous_name", "scopes", "previous_scopes",
                                                      "min_trust", "previous_min_trust"))
    CONNECTION_DELETED = (522, "connection.deleted", ("name", "audience"))
    CONNECTION_SECRET_ROTATED = (523, "connection.secret_rotated", ("lookup_id", "previous_lookup_id"))
    TOKEN_ISSUED = (530, "token.issued", ("jti", "run", "scope", "audience", "expires_in", "grant", "subject",
                                          "chain", "delegation", "may_act", "parent_jti", "trust"))
    TOKEN_DENIED = (531, "token.denied", ("reason", "client_id"))
    TOKEN_INTROSPECTED = (532, "token.introspected", ("jti", "active", "connection"))
    TOKEN_REVOKED = (533, "token.revoked", ("jti",))
    TOKEN_EXCHANGE_ERROR = (534, "token_exchange.error", ("reason", "client_id", "subject", "chain"))
    RUN_STARTED = (540, "run.started", ("agent", "description", "status", "operation"))
    RUN_TERMINATED = (541, "run.terminated", ("agent", "reason"))
    RUN_STOPPING = (542, "run.stopping", ("agent", "stop_by"))
    RUN_RELEASED = (543, "run.released", ("agent",))
    RUN_COMPLETED = (544, "run.completed", ("agent",))
    SIGNING_KEY_CREATED = (550, "signing_key.created", ("kid", "alg", "activates_at"))
    SIGNING_KEY_RETIRED = (551, "signing_key.retired", ("kid", "unpublish_at"))
    DEVICE_REQUESTED = (560, "delegation.device_requested", ("agent", "audience", "scopes", "expires_in"))
    DELEGATION_GRANTED = (561, "delegation.granted", ("agent", "person", "audience", "scopes", "expires_at",
                                                      "device_authorization"))
    DELEGATION_DENIED = (562, "delegation.denied", ("agent", "device_authorization"))
    DELEGATION_REVOKED = (563, "delegation.revoked", ("agent", "person", "reason", "refresh_tokens"))
    REFRESH_REUSED = (564, "delegation.refresh_reused", ("delegation", "agent"))
    USER_CODE_REJECTED = (565, "delegation.user_code_rejected", ("reason",))

    # 6xx trust
    TRUST_ROOT_ADDED = (601, "trust.root_added", ("name", "kids"))
    TRUST_ROOT_REMOVED = (602, "trust.root_removed", ("name", "attestations"))
    ATTESTATION_ADDED = (610, "trust.attestation_added",
                         ("agent", "root", "kid", "type", "weight", "expires_at"))
    ATTESTATION_REJECTED = (611, "trust.attestation_rejected", ("agent", "reason"))
    SIGNAL_RECEIVED = (620, "trust.signal", ("agent", "type", "severity", "connection"))
    SIGNAL_REJECTED = (621, "trust.signal_rejected", ("reason", "connection"))
    # Every dispatch decision and every refusal at a gate, with the score, level and reasons of
    # that moment: the trust score at dispatch time, on record.
    TRUST_ALLOWED = (630, "trust.allow", _DECISION)
    TRUST_ESCALATED = (631, "trust.escalate", _DECISION)
    TRUST_DENIED = (632, "trust.deny", _DECISION)
    APPROVAL_APPROVED = (640, "approval.approved", ("run", "agent", "operation", "score", "level"))
    APPROVAL_DENIED = (641, "approval.denied", ("run", "agent", "operation", "comment"))
    APPROVAL_EXPIRED = (642, "approval.expired", ("run", "agent", "operation"))
    APPROVAL_REFUSED = (643, "approval.refused", ("reason", "run"))
    TRUST_GATE_CREATED = (650, "trust.gate_created", ("name", "operation", "min_score", "below"))
    TRUST_GATE_CHANGED = (651, "trust.gate_changed", ("name", "operation", "min_score", "below", "previous"))
    TRUST_GATE_DELETED = (652, "trust.gate_deleted", ("name", "operation"))

    # 7xx audit and exports
    ACCESS_REVIEW_EXPORTED = (701, "export.access_review", ("rows",))
    AUDIT_LOG_EXPORTED = (702, "export.audit_log", ("format", "rows", "filters"))
    AUDIT_VERIFIED = (710, "audit.verified", ("ok", "checked", "first_bad_seq"))
    AUDIT_CHAIN_KEYED = (711, "audit.chain_keyed", ("legacy_entries", "kid"))
    AUDIT_CHECKPOINT_ISSUED = (712, "audit.checkpoint_issued", ("seq", "head", "kid"))

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def label(self) -> str:
        return self.value[1]

    @property
    def data_keys(self) -> frozenset[str]:
        return frozenset(self.value[2])

    @classmethod
    def from_code(cls, code: int) -> "AuditEvent":
        return _BY_CODE[code]

    @classmethod
    def from_label(cls, label: str) -> "AuditEvent":
        return _BY_LABEL[label]


_BY_CODE = {e.code: e for e in AuditEvent}
_BY_LABEL = {e.label: e for e in AuditEvent}
assert len(_BY_CODE) == len(AuditEvent) == len(_BY_LABEL), "audit codes and labels must be unique"


class Outcome:
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    CHOICES = [(SUCCESS, "Success"), (FAILURE, "Failure"), (DENIED, "Denied")]
