from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who did it. Stored flat on each audit entry (`actor_type`, `actor_id`, `actor_display`)."""

    type: str  # human | api_key | agent | scim | system | anonymous
    id: str = ""
    display: str = ""

    @classmethod
    def for_user(cls, user) -> "Actor":
        return cls("human", str(user.pk), user.email)

    @classmethod
    def for_api_key(cls, key) -> "Actor":
        return cls("api_key", str(key.pk), key.name)

    @classmethod
    def for_agent(cls, agent) -> "Actor":
        return cls("agent", str(agent.pk), agent.name)

    @classmethod
    def for_connection(cls, connection) -> "Actor":
        return cls("connection", str(connection.pk), connection.name)

    @classmethod
    def system(cls, display: str = "system") -> "Actor":
        return cls("system", "", display)

    @classmethod
    def anonymous(cls, display: str = "") -> "Actor":
        return cls("anonymous", "", display)
