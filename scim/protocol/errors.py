"""SCIM errors (RFC 7644 §3.12): the Error schema, `status` as a string, `scimType` on every 4xx
that has one, `application/scim+json`, never a stack trace."""

import json

from django.http import HttpResponse

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
CONTENT_TYPE = "application/scim+json"


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type
        self.cross_tenant: tuple[str, str] | None = None  # (what, id): another org's id was named
        self.denial = None  # an core.errors.DenialAudit to record once the transaction is undone

    def response(self) -> HttpResponse:
        body = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        response = HttpResponse(json.dumps(body), status=self.status, content_type=CONTENT_TYPE)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="scim"'
        return response


def bad_request(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


def not_found(resource: str = "Resource") -> ScimError:
    # The same body whether the id never existed or belongs to another org.
    return ScimError(404, f"{resource} not found.")
