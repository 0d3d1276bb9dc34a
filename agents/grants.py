"""Where human authorization flows down into agent credentials.

An agent's grant (scopes and audiences) may never exceed what its owners hold. A scope that names a
catalogue permission (the agent calling our own API) needs that permission; a downstream service's
scope needs `connection:use`. Every owner must hold what the grant needs (the grant is the
intersection over owners), checked when the grant is set and again at every token issuance, so an
owner who loses a permission narrows the agent at once.
"""


from core.permissions import Perm


def scope_needs(scope: str) -> Perm:
    return Perm._value2member_map_.get(scope) or Perm.CONNECTION_USE


def delegable_scopes(scopes, owner_perms: list[frozenset]) -> set[str]:
    """The scopes every owner may hand to the agent (none when the agent has no acting owner)."""
    if not owner_perms:
        return set()
    return {s for s in scopes if all(scope_needs(s) in perms for perms in owner_perms)}
