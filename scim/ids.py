"""Resource ids as clients send them: UUIDs in any case, or something that is not one."""

import uuid


def uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def id_key(value) -> str:
    """One spelling per id, so that an upper-case id names the same resource."""
    parsed = uuid_or_none(value)
    return str(parsed) if parsed else str(value)
