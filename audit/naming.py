"""Names for the actors and targets of audit entries, as the apps that own each kind of object give them.

An entry stores only `type` and `id`. Each app registers a `Namer` per kind it owns (accounts for
members and API keys, agents for agents, connections and runs, ...), and the composition root
(iam_project.urls) hands them all to the audit pages, so the audit app imports none of those apps.
A page asks every namer of a kind once, for all the ids of that kind on the page: a batch query per
kind, whatever the page holds. An id that no namer knows (a deleted object, a hand-made id) stays the
raw id, with no link.

    Namer("team", lambda org, ids: {"<id>": ("Red team", "/orgs/acme/teams/<id>/")})
"""

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Names = dict[str, tuple[str, str | None]]

# An actor's type is the kind of object it is, under another name in a few cases.
ACTOR_KINDS = {"human": "user", "api_key": "apikey", "scim": "scimtoken"}


@dataclass(frozen=True)
class Namer:
    """`names(org, ids)` answers {id: (name, url or None)} for the ids it knows among `ids`, in one
    query. `find(org, text)`, where given, turns what a person typed (an email) into an id."""

    kind: str
    names: Callable[[object, list[str]], Names]
    find: Callable[[object, str], str | None] | None = None


@dataclass(frozen=True)
class Named:
    type: str
    id: str
    name: str
    url: str | None = None

    @property
    def known(self) -> bool:
        return self.name != self.id


def uuid_ids(ids: Iterable[str]) -> list[str]:
    """The ids that are UUIDs (a primary key lookup with anything else would fail on PostgreSQL)."""
    valid = []
    for value in ids:
        try:
            valid.append(str(uuid.UUID(str(value))))
        except ValueError:
            continue
    return valid


class Naming:
    """The registry: every namer of every kind, asked in batches."""

    def __init__(self, namers: Iterable[Namer] = ()):
        self.by_kind: dict[str, list[Namer]] = defaultdict(list)
        for namer in namers:
            self.by_kind[namer.kind].append(namer)

    def resolve(self, org, wanted: dict[str, set[str]]) -> dict[tuple[str, str], tuple[str, str | None]]:
        """{(kind, id): (name, url)} for the ids each kind's namers know; one call per namer."""
        found = {}
        for kind, ids in wanted.items():
            ids = sorted(i for i in ids if i)
            if not ids:
                continue
            for namer in self.by_kind.get(kind, ()):
                for key, value in namer.names(org, ids).items():
                    found.setdefault((kind, str(key)), value)
        return found

    def find(self, org, kind: str, text: str) -> str | None:
        for namer in self.by_kind.get(kind, ()):
            if namer.find is not None and (found := namer.find(org, text)):
                return found
        return None

    def name_entries(self, org, entries: list) -> list:
        """Set `actor` and `target` (each a `Named`) on every entry, in one batch per kind."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for e in entries:
            if e.actor_id:
                wanted[ACTOR_KINDS.get(e.actor_type, e.actor_type)].add(e.actor_id)
            if e.target_type and e.target_id:
                wanted[e.target_type].add(e.target_id)
        found = self.resolve(org, wanted)
        for e in entries:
            kind = ACTOR_KINDS.get(e.actor_type, e.actor_type)
            name, url = found.get((kind, e.actor_id), (None, None))
            # An actor nobody can name any more still has the display it had when it acted.
            name = name or e.actor_display or e.actor_id or e.actor_type
            e.actor = Named(e.actor_type, e.actor_id, name, url)
            name, url = found.get((e.target_type, e.target_id), (None, None))
            e.target = Named(e.target_type, e.target_id, name or e.target_id, url)
        return entries
