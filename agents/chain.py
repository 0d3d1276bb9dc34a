"""Delegation chains as tokens carry them (RFC 8693 §4.1), read without any I/O.

A token's `sub` is its root principal (`user:<id>` or `agent:<id>`); `act` nests the actors, the
current one outermost. A token a person's approval produced reads `sub: user:U, act: {sub: agent:A}`;
when agent B exchanges a token, the result keeps `sub` and wraps the chain: `act: {sub: agent:B,
act: <the subject token's act>}`, and where the subject token was the previous agent's own (no
`act`), that agent is recorded as the inner `act`. So the principals, root first, are `sub` then the
actors innermost first, the root counted once, and the chain's depth is the number of hand-offs
between them: a person's approval is one, each exchange another.

`anc` (a private claim) lists, root first, each ancestor token's `jti` and the client secret it was
issued under (`cred`): revoking any of them, or any agent, run or delegation named in the chain,
kills this token at its next verification, read in the same single store round trip.
"""

MAX_ACT_NESTING = 16  # far beyond any policy's depth; a token nesting deeper is malformed


class ChainMalformed(Exception):
    pass


def actors(claims: dict) -> list[str]:
    """The `act` subjects, outermost (current actor) first."""
    found, act = [], claims.get("act")
    while act is not None:
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or len(found) >= MAX_ACT_NESTING:
            raise ChainMalformed("act")
        found.append(act["sub"])
        act = act.get("act")
    return found


def principals(claims: dict) -> list[str]:
    """Every principal of the chain, root first, the root counted once."""
    inner_first = list(reversed(actors(claims)))
    if inner_first and inner_first[0] == claims["sub"]:
        inner_first = inner_first[1:]
    return [claims["sub"], *inner_first]


def depth(claims: dict) -> int:
    """Hand-offs from the root principal: 0 for an agent's own token, 1 for a person's approval or
    one exchange, and one more per exchange."""
    return len(principals(claims)) - 1


def agents_in(claims: dict) -> list[str]:
    return [p for p in principals(claims) if p.startswith("agent:")]


def act_for_exchange(subject: dict, actor_subject: str) -> dict:
    """The `act` of a token the agent `actor_subject` gets by exchanging `subject`."""
    inner = subject.get("act") or {"sub": subject["sub"]}
    return {"sub": actor_subject, "act": inner}


def ancestors_for_exchange(subject: dict, *also: dict) -> list[dict]:
    """The `anc` of a token issued from `subject` (and an actor token, if any): theirs plus them."""
    links = [dict(link) for link in subject.get("anc", ())]
    for token in (subject, *also):
        link = {"jti": token["jti"]}
        if token.get("cred"):
            link["cred"] = token["cred"]
        links.append(link)
    return links


def ancestor_links(claims: dict) -> list[dict]:
    links = claims.get("anc") or []
    if not isinstance(links, list) or len(links) > MAX_ACT_NESTING * 2:
        raise ChainMalformed("anc")
    for link in links:
        if not isinstance(link, dict) or not isinstance(link.get("jti"), str):
            raise ChainMalformed("anc")
    return links
