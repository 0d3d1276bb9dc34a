"""SCIM errors (RFC 7644 §3.12): the Error schema, `status` as a string, `scimType` on every 4xx
that has one, `application/scim+json`, never a stack trace.

The provisioning services refuse with the domain's errors (core.errors); `from_service_error` is the
one table that turns them into SCIM's. Errors of the protocol itself (a body that is not JSON, a
filter that does not parse) are raised as ScimError where they are found.
"""

import json

from django.http import HttpResponse

from core.errors import ServiceError

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
CONTENT_TYPE = "application/scim+json"

# ServiceError code -> (status, scimType). Anything else keeps its own status, with SCIM's usual
# scimType for a 400 (invalidValue) or a 409 (uniqueness).
_BY_CODE = {
    "uniqueness": (409, "uniqueness"),
    "last_owner": (409, "mutability"),  # the org's last owner cannot be deprovisioned
    "version_mismatch": (412, None),
    "password_not_managed": (400, "mutability"),  # another org shares the account, or did not create it
    "password_policy": (400, "invalidValue"),
}
_BY_STATUS = {400: "invalidValue", 409: "uniqueness"}


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type

    def response(self) -> HttpResponse:
        body = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        response = HttpResponse(json.dumps(body), status=self.status, content_type=CONTENT_TYPE)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="scim"'
        return response


def from_service_error(exc: ServiceError) -> ScimError:
    status, scim_type = _BY_CODE.get(exc.code, (exc.status, _BY_STATUS.get(exc.status)))
    return ScimError(status, exc.detail, scim_type)


def bad_request(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


def not_found(resource: str = "Resource") -> ScimError:
    # The same body whether the id never existed or belongs to another org.
    return ScimError(404, f"{resource} not found.")
