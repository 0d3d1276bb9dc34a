"""OpenAPI description of our API-key authentication, for drf-spectacular."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "rbac.authentication.ApiKeyAuthentication"
    name = "orgApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "iamk_<lookup id>_<secret>",
            "description": "An org API key. It acts only in its own org and holds exactly the "
            "permissions it was minted with.",
        }


class AgentTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "agents.authentication.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT (RFC 9068)",
            "description": "An agent's capability token from /oauth/{org}/token, issued for the audience "
            "{BASE}/api/v1/orgs/{org}/. Scopes that name catalogue permissions are what it may do.",
        }
