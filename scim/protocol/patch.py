"""PATCH (RFC 7644 §3.5.2) applied to a resource's JSON form, then validated as a whole.

The operations run against the resource's current representation (a dict); the result goes
through the same reader as a PUT, so a PATCH can never store what a PUT would refuse, and a failing
operation leaves nothing half-applied. Group members are the exception: they are applied as a set
of ids (`MemberChanges`) so that a 10,000-member group is never loaded to add one person.

What real IdPs send and a strict reading would refuse is accepted: `op` in any case ("Replace"),
`path`-less operations whose value is an object (Okta), value-filtered paths that create the
element they name when it is missing (Entra: `emails[type eq "work"].value`), fully qualified
extension attributes as keys or paths, and member removal by filter or by a value array.
"""


from scim2_models import InvalidPathException, Path
from scim2_models.path import AttrPath, Comparison, LogicalExpr, ValuePath

from scim.ids import id_key
from scim.protocol.errors import ScimError
from scim.protocol.filters import ENTERPRISE
from scim.protocol.resources import CaseInsensitive, member_ids

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_OPERATIONS = 1000

USER_ATTRIBUTES = {a.lower(): a for a in (
    "userName", "externalId", "name", "displayName", "nickName", "profileUrl", "title", "userType",
    "preferredLanguage", "locale", "timezone", "active", "password", "emails", "phoneNumbers", "addresses")}
USER_COMPLEX = {"name": ("formatted", "familyName", "givenName", "middleName", "honorificPrefix",
                         "honorificSuffix")}
USER_MULTI = {"emails", "phoneNumbers", "addresses"}
ENTERPRISE_ATTRIBUTES = {a.lower(): a for a in (
    "employeeNumber", "costCenter", "organization", "division", "department", "manager")}
GROUP_ATTRIBUTES = {"displayname": "displayName", "externalid": "externalId", "members": "members"}
READ_ONLY = {"id", "meta", "groups", "schemas"}


class MemberChanges:
    """The net effect of a PATCH's member operations, taken in order (RFC 7644 §3.5.2).

    `replace` is None or (id, display) pairs: when set, the members become (replace ∪ add) − remove;
    when None, `add` ((id, display) pairs) are added and `remove` (ids) removed. Once a replacement
    (or a removal of every member, which is a replacement with none) is seen, later operations are
    folded into it, so `add` and `remove` are then empty; no id is ever in both.
    """

    def __init__(self):
        self._replace: dict | None = None  # key -> (id, display)
        self._add: dict = {}  # key -> (id, display)
        self._remove: dict = {}  # key -> id

    @property
    def replace(self) -> list | None:
        return None if self._replace is None else list(self._replace.values())

    @property
    def add(self) -> list:
        return list(self._add.values())

    @property
    def remove(self) -> list:
        return list(self._remove.values())

    def replace_with(self, members: list) -> None:
        self._replace, self._add, self._remove = {}, {}, {}
        self.include(members)

    def include(self, members: list) -> None:
        target = self._add if self._replace is None else self._replace
        for ident, display in members:
            key = id_key(ident)
            self._remove.pop(key, None)
            display = display or target.get(key, ("", ""))[1]  # a later bare id keeps the label
            target[key] = (ident, display)

    def exclude(self, ids: list) -> None:
        for ident in ids:
            key = id_key(ident)
            self._add.pop(key, None)
            if self._replace is None:
                self._remove[key] = ident
            else:
                self._replace.pop(key, None)




def operations(body) -> list[tuple[str, str | None, object]]:
    if not isinstance(body, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    data = CaseInsensitive(body)
    schemas = data.get("schemas")
    if schemas is not None and (not isinstance(schemas, list)
                                or PATCH_SCHEMA.lower() not in {str(s).lower() for s in schemas}):
        raise ScimError(400, f"'schemas' must be [{PATCH_SCHEMA!r}].", "invalidSyntax")
    ops = data.get("Operations")
    if not isinstance(ops, list) or not ops:
        raise ScimError(400, "'Operations' must be a non-empty list.", "invalidSyntax")
    if len(ops) > MAX_OPERATIONS:
        raise ScimError(400, f"At most {MAX_OPERATIONS} operations per request.", "tooMany")
    parsed = []
    for raw in ops:
        if not isinstance(raw, dict):
            raise ScimError(400, "Each operation must be an object.", "invalidSyntax")
        op = CaseInsensitive(raw)
        name = str(op.get("op", "")).lower()
        if name not in ("add", "replace", "remove"):
            raise ScimError(400, f"Unknown operation {op.get('op')!r}.", "invalidSyntax")
        path = op.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ScimError(400, "'path' must be a non-empty string.", "invalidPath")
        if name != "remove" and "value" not in op:
            raise ScimError(400, f"'{name}' needs a value.", "invalidValue")
        if name == "remove" and path is None:
            raise ScimError(400, "'remove' needs a path.", "noTarget")
        parsed.append((name, path.strip() if path else None, op.get("value")))
    return parsed


def _parse_path(path: str):
    if path.lower() == ENTERPRISE.lower():
        return "extension"
    try:
        return Path(path).ast
    except (InvalidPathException, ValueError):
        # Okta/Entra write extension attributes as "<urn>:<attr>"; scim2-models reads most, but a
        # sub-attribute after a URN ("...:User:manager.value") is read here.
        lowered = path.lower()
        if lowered.startswith(ENTERPRISE.lower() + ":"):
            rest = path[len(ENTERPRISE) + 1:]
            attr, _, sub = rest.partition(".")
            try:
                return AttrPath(attr=attr, sub_attr=sub or None, uri=ENTERPRISE)
            except ValueError:
                pass
        raise ScimError(400, f"'{path}' is not a valid path.", "invalidPath")


# --- Users: operations on the representation -----------------------------------------------------

def apply_user(resource: dict, ops, resource_id: str) -> dict:
    doc = {k: v for k, v in resource.items() if k not in READ_ONLY}
    doc.setdefault(ENTERPRISE, {})
    for name, path, value in ops:
        if path is None:
            if not isinstance(value, dict):
                raise ScimError(400, f"A '{name}' without a path needs an object value.", "invalidValue")
            for key, item in value.items():
                if key.lower() in ("schemas", "meta") or key.lower() == "id" and str(item) == resource_id:
                    continue
                _user_op(doc, name, _parse_path(key), item)
        else:
            _user_op(doc, name, _parse_path(path), value)
    doc["schemas"] = resource.get("schemas", [])
    if doc.get(ENTERPRISE) and ENTERPRISE not in doc["schemas"]:
        doc["schemas"] = [*doc["schemas"], ENTERPRISE]
    return doc


def _enterprise_name(name: str) -> str:
    canonical = ENTERPRISE_ATTRIBUTES.get(str(name).lower())
    if canonical is None:
        raise ScimError(400, f"'{name}' is not an enterprise attribute.", "invalidPath")
    return canonical


def _user_target(doc: dict, attr_path: AttrPath) -> tuple[dict, str]:
    """The object holding the attribute and its canonical name; 400 for anything we do not store."""
    uri = (attr_path.uri or "").lower()
    if uri == ENTERPRISE.lower():
        return doc.setdefault(ENTERPRISE, {}), _enterprise_name(attr_path.attr)
    if uri and uri != "urn:ietf:params:scim:schemas:core:2.0:user":
        raise ScimError(400, f"Unknown schema {attr_path.uri}.", "invalidPath")
    lowered = attr_path.attr.lower()
    if lowered in READ_ONLY:
        raise ScimError(400, f"'{attr_path.attr}' is read-only.", "mutability")
    canonical = USER_ATTRIBUTES.get(lowered)
    if canonical is None:
        raise ScimError(400, f"'{attr_path.attr}' is not an attribute of User here.", "invalidPath")
    return doc, canonical


def _user_op(doc: dict, name: str, node, value) -> None:
    if node == "extension":  # the whole enterprise extension, e.g. a path of just its URN
        if name == "remove":
            doc[ENTERPRISE] = {}
            return
        if not isinstance(value, dict):
            raise ScimError(400, "The enterprise extension takes an object.", "invalidValue")
        # RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged, for add and replace alike.
        current = dict(doc.get(ENTERPRISE) or {})
        for key, item in value.items():
            if key.lower() not in ("schemas", "meta"):
                current[_enterprise_name(key)] = item
        doc[ENTERPRISE] = current
        return
    if isinstance(node, ValuePath):
        container, attr = _user_target(doc, node.attr_path)
        if attr not in USER_MULTI:
            raise ScimError(400, f"'{attr}' is not multi-valued.", "invalidPath")
        _value_path_op(container, attr, node, name, value)
        return
    container, attr = _user_target(doc, node)
    sub = node.sub_attr
    if sub:
        current = container.get(attr)
        if attr in USER_MULTI:  # emails.value etc.: applies to every element
            items = _elements(container, attr)
            if name == "remove":
                container[attr] = [{k: v for k, v in i.items() if k.lower() != sub.lower()} for i in items]
            else:
                container[attr] = [{**i, sub: value} for i in items] or [{sub: value}]
            return
        if current is not None and not isinstance(current, dict):
            current = {"value": current}
        current = dict(current or {})
        key = next((k for k in current if k.lower() == sub.lower()), sub)
        if name == "remove":
            current.pop(key, None)
        else:
            current[key] = value
        container[attr] = current
        return
    if name == "remove":
        container.pop(attr, None)
        return
    if name == "add" and attr in USER_MULTI:
        items = value if isinstance(value, list) else [value]
        existing = _elements(container, attr)
        if any(isinstance(i, dict) and _truthy(CaseInsensitive(i).get("primary")) for i in items):
            existing = [{k: v for k, v in e.items() if k != "primary"} for e in existing]  # one primary
        known = {_value_key(e) for e in existing}
        container[attr] = existing + [i for i in items if _value_key(i) not in known]
        return
    merge = isinstance(value, dict) and isinstance(container.get(attr), dict)
    if attr in USER_COMPLEX and merge:  # complex: the sub-attributes given replace theirs (§3.5.2.3)
        container[attr] = {**container[attr], **value}
        return
    container[attr] = value


def _elements(container: dict, attr: str) -> list[dict]:
    """The elements of a multi-valued attribute, each an object. An earlier operation of the same
    request may have set it to anything; a lone object reads as a list of one, as in a PUT."""
    current = container.get(attr)
    if current is None:
        return []
    if isinstance(current, dict):
        current = [current]
    if not isinstance(current, list) or not all(isinstance(i, dict) for i in current):
        raise ScimError(400, f"Each of '{attr}' must be an object.", "invalidValue")
    return list(current)


def _value_key(item) -> object:
    if isinstance(item, dict):
        data = CaseInsensitive(item)
        return str(data.get("value")).lower(), str(data.get("type")).lower()
    return item


def _truthy(value) -> bool:
    return value is True or isinstance(value, str) and value.lower() == "true"


def _matches(item: dict, node) -> bool:
    """Evaluate a value filter on one element of a multi-valued attribute (eq/ne/co/sw/ew/pr)."""
    data = CaseInsensitive(item) if isinstance(item, dict) else CaseInsensitive({"value": item})
    if isinstance(node, LogicalExpr):
        results = [_matches(item, t) for t in node.terms]
        return all(results) if node.op.value == "and" else any(results)
    if type(node).__name__ == "Not":
        return not _matches(item, node.expr)
    if type(node).__name__ == "Present":
        return data.get(node.attr_path.attr) not in (None, "", [])
    if isinstance(node, Comparison):
        actual, expected = data.get(node.attr_path.attr), node.value
        if isinstance(actual, bool) or isinstance(expected, bool):
            actual = str(actual).lower()
            expected = str(expected).lower()
        actual, expected = str(actual if actual is not None else "").lower(), str(expected).lower()
        return {"eq": actual == expected, "ne": actual != expected, "co": expected in actual,
                "sw": actual.startswith(expected), "ew": actual.endswith(expected),
                "gt": actual > expected, "ge": actual >= expected, "lt": actual < expected,
                "le": actual <= expected}[node.op.value]
    raise ScimError(400, "Unsupported filter in path.", "invalidFilter")


def _simple_type(node) -> str | None:
    """`type eq "work"`: the element an Entra add/replace creates when none matches."""
    if isinstance(node, Comparison) and node.attr_path.attr.lower() == "type" and node.op.value == "eq":
        return str(node.value)
    return None


def _value_path_op(container: dict, attr: str, node: ValuePath, name: str, value) -> None:
    items = _elements(container, attr)
    hits = [i for i, item in enumerate(items) if _matches(item, node.val_filter)]
    sub = node.sub_attr
    if name == "remove":
        if sub:
            for i in hits:
                items[i] = {k: v for k, v in items[i].items() if k.lower() != sub.lower()}
        else:
            items = [item for i, item in enumerate(items) if i not in hits]
        container[attr] = items
        return
    if not hits:
        kind = _simple_type(node.val_filter)
        if kind is None:
            raise ScimError(400, f"No value of '{attr}' matches the filter.", "noTarget")
        items.append({"type": kind, **({sub: value} if sub else (value if isinstance(value, dict) else {}))})
        container[attr] = items
        return
    for i in hits:
        if sub:
            items[i] = {**items[i], sub: value}
        elif isinstance(value, dict):
            items[i] = {**items[i], **value} if name == "add" else value
        else:
            raise ScimError(400, f"Give an object to {name} a value of '{attr}'.", "invalidValue")
    container[attr] = items


# --- Groups: attributes on the representation, members as id sets --------------------------------

def apply_group(resource: dict, ops, resource_id: str) -> tuple[dict, MemberChanges]:
    doc = {k: v for k, v in resource.items() if k not in READ_ONLY and k != "members"}
    doc["schemas"] = resource.get("schemas", [])
    members = MemberChanges()
    for name, path, value in ops:
        if path is None:
            if not isinstance(value, dict):
                raise ScimError(400, f"A '{name}' without a path needs an object value.", "invalidValue")
            for key, item in value.items():
                if key.lower() in ("schemas", "meta") or key.lower() == "id" and str(item) == resource_id:
                    continue
                _group_op(doc, members, name, _parse_path(key), item)
        else:
            _group_op(doc, members, name, _parse_path(path), value)
    return doc, members


def _group_op(doc: dict, members: MemberChanges, name: str, node, value) -> None:
    attr_path = node.attr_path if isinstance(node, ValuePath) else node
    if attr_path.uri and attr_path.uri.lower() != "urn:ietf:params:scim:schemas:core:2.0:group":
        raise ScimError(400, f"Unknown schema {attr_path.uri}.", "invalidPath")
    lowered = attr_path.attr.lower()
    if lowered in READ_ONLY:
        raise ScimError(400, f"'{attr_path.attr}' is read-only.", "mutability")
    attr = GROUP_ATTRIBUTES.get(lowered)
    if attr is None:
        raise ScimError(400, f"'{attr_path.attr}' is not an attribute of Group.", "invalidPath")
    if attr != "members":
        if isinstance(node, ValuePath) or attr_path.sub_attr:
            raise ScimError(400, f"'{attr}' has no sub-attributes.", "invalidPath")
        if name == "remove":
            doc.pop(attr, None)
        else:
            doc[attr] = value
        return
    if isinstance(node, ValuePath):  # members[value eq "id"]
        if name != "remove":
            raise ScimError(400, "Add members with path 'members' and a list of values.", "invalidPath")
        members.exclude(_filter_ids(node.val_filter))
        return
    if attr_path.sub_attr:
        raise ScimError(400, "Use 'members' or members[value eq \"...\"].", "invalidPath")
    if name == "remove" and value is None:  # every member
        members.replace_with([])
    elif name == "remove":
        members.exclude([i for i, _display in member_ids(value)])
    elif name == "add":
        members.include(member_ids(value))
    else:
        members.replace_with(member_ids(value or []))


def _filter_ids(node) -> list[str]:
    """members[value eq "a"] or members[value eq "a" or value eq "b"]."""
    if isinstance(node, Comparison) and node.attr_path.attr.lower() == "value" and node.op.value == "eq":
        return [str(node.value)]
    if isinstance(node, LogicalExpr) and node.op.value == "or":
        return [i for term in node.terms for i in _filter_ids(term)]
    raise ScimError(400, "Select members with value eq \"<id>\".", "invalidFilter")
