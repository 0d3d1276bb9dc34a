"""What a protocol hands to sign-in (`Assertion`) and how it refuses (`SsoRefused`)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Assertion:
    """What the IdP proved about the person, after the protocol layer verified it."""

    issuer: str  # the OIDC `iss`, or the SAML IdP's entity id
    subject: str  # the OIDC `sub`, or the SAML NameID
    email: str = ""
    email_verified: bool = False  # SAML: the IdP's assertion counts as verified
    display_name: str = ""
    groups: tuple = ()
    mfa_values: tuple = ()  # OIDC `amr` values and `acr`; SAML AuthnContextClassRef
    idp_session: str = ""  # OIDC `sid`, SAML SessionIndex
    authenticated_at: float | None = None  # OIDC `auth_time`, SAML AuthnInstant (epoch seconds)
    claims: dict = field(default_factory=dict)  # shown by "test connection"; never secrets


class SsoRefused(Exception):
    """The IdP's answer, or the flow it claims to finish, is refused. `reason` is a stable code."""

    def __init__(self, reason: str, status: int = 400, detail: str = "", audited: bool = False,
                 retry_after: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.audited = audited  # already on record (refuse() writes no second entry)
        self.retry_after = retry_after
        self.detail = detail or REASONS.get(reason, "Single sign-on could not be completed.")


REASONS = {
    "state_missing": "The sign-in request is missing its state. Start again from the sign-in page.",
    "state_invalid": "This sign-in link is not valid in this browser. Start again from the sign-in page.",
    "state_used": "This sign-in was already completed. Start again from the sign-in page.",
    "state_expired": "This sign-in took too long. Start again from the sign-in page.",
    "connection_disabled": "This sign-in method is switched off.",
    "account_inactive": "This account is deactivated.",
    "membership_inactive": "Your access to this organization is switched off.",
    "not_a_member": "You are not a member of this organization. Ask an administrator to add you.",
    "email_not_verified": "Your identity provider did not confirm this email address.",
    "account_not_linked": "An account with this email exists but is not linked to this identity "
    "provider. Sign in with it and ask an administrator.",
    "domain_not_verified": "Your email domain is not verified for this organization.",
    "email_missing": "Your identity provider sent no email address.",
    "reauth_other_person": "You signed in at your identity provider as someone else. Sign in there as "
    "yourself and try again.",
    "not_provisioned": "Your organization's directory has not given you access here. Ask an administrator.",
    "reauth_not_fresh": "Your identity provider did not ask you to sign in again. Try again.",
    "idp_error": "Your identity provider did not sign you in. Start again from the sign-in page.",
    "code_missing": "The identity provider's answer had no code. Start again from the sign-in page.",
    "issuer_mismatch": "This answer came from another identity provider. Start again from the sign-in page.",
    "token_exchange_failed": "The identity provider refused to complete this sign-in. Start again from the "
    "sign-in page.",
    "provider_unreachable": "The identity provider could not be reached. Try again later.",
    "provider_unconfigured": "This identity provider is not set up yet. Ask an administrator.",
    "id_token_invalid": "The identity provider's ID token was not valid. Start again from the sign-in page.",
    "nonce_mismatch": "The ID token does not belong to this sign-in. Start again from the sign-in page.",
    "userinfo_invalid": "The identity provider's user information did not match its ID token.",
    "saml_audience_mismatch": "The assertion is not meant for this service.",
    "saml_recipient_mismatch": "The assertion was sent to another address.",
    "saml_response_rejected": "The identity provider's answer did not verify. Start again from the "
    "sign-in page.",
    "saml_unsolicited": "This sign-in was not started here.",
    "saml_replayed": "This sign-in was already used.",
    "rate_limited": "Too many sign-in attempts from your network. Wait a minute and try again.",
}
