"""SAML pages: the SP metadata, the login redirect to the IdP, the ACS the IdP POSTs to, and the
same-site finish step after it. The protocol is in `sso.saml`.

The ACS is a cross-site POST, which carries no SameSite=Lax session cookie: it verifies the answer,
keeps the verified assertion sealed on the flow its InResponseTo names, and sends the browser
(303) to the finish step, a same-site GET that does carry the cookie, where the flow's state
(the RelayState) is checked against this browser's session and spent."""

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sso import saml, signin
from sso.models import Flow


def login_start(request, connection, *, next_url: str = "", test: bool = False, reauth: bool = False):
    if not connection.idp_sso_url or not connection.sp_private_key_sealed:
        raise signin.SsoRefused("provider_unconfigured", 503)
    request_id = saml.new_request_id()
    _, state = signin.flow_start(
        request, connection, next_url=next_url, test=test, reauth=reauth, request_id=request_id
    )
    return HttpResponseRedirect(
        saml.authn_redirect(connection, request_id=request_id, relay_state=state, force_authn=reauth)
    )


@never_cache
@require_GET
def metadata_view(request, org, connection):
    connection = signin.connection_for(org, connection, "saml")
    return HttpResponse(saml.sp_metadata(connection), content_type="application/samlmetadata+xml")


@never_cache
@require_GET
def login_view(request, org, connection):
    connection = signin.connection_for(org, connection, "saml")
    try:
        return login_start(request, connection, next_url=request.GET.get("next", ""))
    except signin.SsoRefused as exc:
        return signin.refuse(request, connection, exc)


@csrf_exempt
@never_cache
@require_POST
def acs_view(request, org, connection):
    connection = signin.connection_for(org, connection, "saml")
    try:
        return _acs(request, connection)
    except signin.SsoRefused as exc:
        return signin.refuse(request, connection, exc)


def _acs(request, connection):
    encoded = request.POST.get("SAMLResponse", "")
    _, in_response_to = saml.response_precheck(encoded)
    if not in_response_to:
        if not connection.allow_idp_initiated:
            raise signin.SsoRefused("saml_unsolicited", detail="This sign-in was not started here.")
        assertion = saml.response_verify(connection, encoded, request_id=None)
        return signin.sign_in(request, connection, None, assertion)
    flow = (
        Flow.objects.for_org(connection.org)
        .filter(
            connection=connection,
            request_id=in_response_to,
            consumed_at__isnull=True,
            expires_at__gt=timezone.now(),
            result_sealed="",
        )
        .first()
    )
    if flow is None:
        raise signin.SsoRefused(
            "saml_unknown_request",
            detail="This answer is for no sign-in started here (or one already finished).",
        )
    assertion = saml.response_verify(connection, encoded, request_id=in_response_to)
    if not saml.result_keep(flow, assertion):
        raise signin.SsoRefused("state_used")
    finish = reverse("sso:saml-finish", kwargs={"org": connection.org.slug, "connection": connection.slug})
    response = HttpResponseRedirect(f"{finish}?{urlencode({'state': request.POST.get('RelayState', '')})}")
    response.status_code = 303
    return response


@never_cache
@require_GET
def finish_view(request, org, connection):
    connection = signin.connection_for(org, connection, "saml")
    try:
        flow = signin.flow_take(request, connection, request.GET.get("state", ""))
        assertion = saml.result_unseal(flow)
        return signin.sign_in(request, connection, flow, assertion)
    except signin.SsoRefused as exc:
        return signin.refuse(request, connection, exc)
