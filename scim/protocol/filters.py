"""SCIM filters (RFC 7644 §3.4.2.2) to Django `Q` objects.

scim2-models parses the expression (its grammar covers the whole ABNF: `and`/`or`/`not`,
grouping, value paths, URN-qualified attributes); this module only walks the tree and maps each
attribute we store to a model field, so a filter becomes an ORM query and never SQL text. An
attribute we do not store, or an operator that makes no sense for its type, is `invalidFilter`.

Multi-valued attributes (`emails`, `phoneNumbers`) are matched through a denormalised text index
(`scim.protocol.users.multi_index`): one line per value, `<type>\\t<value>`, lower-cased, so that
`emails.value co "x"`, `emails[type eq "work"]` and `emails[type eq "work" and value eq "x"]` work
the same on SQLite and PostgreSQL without a join.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from scim2_models import InvalidFilterException, ScimFilter
from scim2_models.path import AttrPath, Comparison, LogicalExpr, Not, Present, ValuePath

from scim.ids import uuid_or_none
from scim.indexes import ADDRESS_PARTS, clean_index_text
from scim.protocol.errors import ScimError
from scim.protocol.text import is_text
from scim.usernames import user_name_key

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_CORE = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_FILTER_LENGTH = 2000


@dataclass(frozen=True)
class Field:
    lookup: str  # the ORM path
    # string | boolean | datetime | id | reference | multi (the value of an indexed list) |
    # multi_type (its type) | complex_multi (a sub-attribute of an indexed list of objects)
    kind: str = "string"
    case_exact: bool = False
    sub: str = ""  # complex_multi: the sub-attribute
    # Compared through lower() so that `eq` uses the (org, lower(...)) unique index; iexact's
    # upper() cannot, and IdPs probe `displayName eq` before creating a group.
    lower_indexed: bool = False
    # The lookup crosses a to-many relation (groups, members): a filter on it needs DISTINCT, or a
    # row comes back once per related row that matches, and it cannot be sorted on.
    to_many: bool = False
    # `eq`/`ne` compare this column with the value's scim.usernames key, as uniqueness does, so a
    # probe finds exactly the row that a create of the same userName would collide with.
    key_lookup: str = ""





USER_FIELDS = {
    "id": Field("id", "id", True),
    "externalid": Field("external_id", case_exact=True),
    "username": Field("user_name", key_lookup="user_name_key"),
    "displayname": Field("display_name"),
    "nickname": Field("nick_name"),
    "profileurl": Field("profile_url", case_exact=True),
    "title": Field("title"),
    "usertype": Field("user_type"),
    "preferredlanguage": Field("preferred_language"),
    "locale": Field("locale"),
    "timezone": Field("time_zone"),
    "active": Field("active", "boolean"),
    "name.formatted": Field("name__formatted"),
    "name.familyname": Field("name__familyName"),
    "name.givenname": Field("name__givenName"),
    "name.middlename": Field("name__middleName"),
    "name.honorificprefix": Field("name__honorificPrefix"),
    "name.honorificsuffix": Field("name__honorificSuffix"),
    "emails": Field("email_index", "multi"),
    "emails.value": Field("email_index", "multi"),
    "phonenumbers": Field("phone_index", "multi"),
    "phonenumbers.value": Field("phone_index", "multi"),
    "emails.type": Field("email_index", "multi_type"),
    "phonenumbers.type": Field("phone_index", "multi_type"),
    "addresses.type": Field("address_index", "multi_type"),
    **{f"addresses.{part.lower()}": Field("address_index", "complex_multi", sub=part.lower())
       for part in ADDRESS_PARTS},
    "addresses": Field("address_index", "complex_multi"),
    "groups": Field("groups__id", "reference", True, to_many=True),
    "groups.value": Field("groups__id", "reference", True, to_many=True),
    "groups.display": Field("groups__display_name", to_many=True),
    "meta.created": Field("created_at", "datetime"),
    "meta.lastmodified": Field("updated_at", "datetime"),
    f"{ENTERPRISE}:employeenumber".lower(): Field("enterprise__employeeNumber"),
    f"{ENTERPRISE}:costcenter".lower(): Field("enterprise__costCenter"),
    f"{ENTERPRISE}:organization".lower(): Field("enterprise__organization"),
    f"{ENTERPRISE}:division".lower(): Field("enterprise__division"),
    f"{ENTERPRISE}:department".lower(): Field("enterprise__department"),
    f"{ENTERPRISE}:manager".lower(): Field("enterprise__manager__value", case_exact=True),
    f"{ENTERPRISE}:manager.value".lower(): Field("enterprise__manager__value", case_exact=True),
}

GROUP_FIELDS = {
    "id": Field("id", "id", True),
    "externalid": Field("external_id", case_exact=True),
    "displayname": Field("display_name", lower_indexed=True),
    "members": Field("members__id", "reference", True, to_many=True),
    "members.value": Field("members__id", "reference", True, to_many=True),
    "members.display": Field("members__user_name", to_many=True),
    "meta.created": Field("created_at", "datetime"),
    "meta.lastmodified": Field("updated_at", "datetime"),
}

# Attributes a filter may never test, whatever the resource: asking is a 400, not an empty list.
NEVER_FILTERABLE = {"password"}


class UnknownAttribute(ScimError):
    """A filter names an attribute this resource type does not have. A search across resource
    types (POST /.search) treats the type as not matching; everywhere else it is the 400 it is."""

    def __init__(self, path):
        super().__init__(400, f"'{path}' is not an attribute that can be filtered on.", "invalidFilter")


def parse(expression: str):
    if len(expression) > MAX_FILTER_LENGTH:
        raise ScimError(400, "The filter is too long.", "invalidFilter")
    try:
        return ScimFilter(expression).ast
    except (InvalidFilterException, ValueError) as exc:
        raise ScimError(400, f"The filter cannot be parsed: {exc}", "invalidFilter")


def attribute_key(path: AttrPath, core_urn: str) -> str:
    uri = (path.uri or "").lower()
    name = path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")
    if uri and uri != core_urn.lower():
        return f"{uri}:{name}"
    return name


class FilterTranslator:
    def __init__(self, fields: dict[str, Field], core_urn: str):
        self.fields, self.core_urn = fields, core_urn

    def translate(self, expression: str, *, unknown_is_false: bool = False) -> tuple[Q, bool]:
        """The filter as a Q, and whether it crosses a to-many relation (the query then needs
        DISTINCT, which every other filter is spared).

        `unknown_is_false`: a test of an attribute this resource type lacks is false rather than a
        400 (RFC 7644 §3.4.3, for a search across resource types).
        """
        tree = parse(expression)
        return self._node(tree, unknown_is_false), self._joins(tree)

    def unknown_attributes(self, expression: str) -> set[str]:
        """The attributes the filter tests that this resource type does not have."""
        unknown, pending = set(), [parse(expression)]
        while pending:
            node = pending.pop()
            if isinstance(node, LogicalExpr):
                pending.extend(node.terms)
            elif isinstance(node, Not):
                pending.append(node.expr)
            elif attribute_key(node.attr_path, self.core_urn) not in self.fields:
                unknown.add(str(node.attr_path).lower())
        return unknown

    def _joins(self, node) -> bool:
        if isinstance(node, LogicalExpr):
            return any(self._joins(t) for t in node.terms)
        if isinstance(node, Not):
            return self._joins(node.expr)
        path = node.attr_path
        field = self.fields.get(attribute_key(path, self.core_urn))
        return field is not None and field.to_many

    def _node(self, node, unknown_is_false: bool = False) -> Q:
        if isinstance(node, LogicalExpr):
            combined = self._node(node.terms[0], unknown_is_false)
            for term in node.terms[1:]:
                other = self._node(term, unknown_is_false)
                combined = combined & other if node.op.value == "and" else combined | other
            return combined
        if isinstance(node, Not):
            return ~self._node(node.expr, unknown_is_false)
        try:
            return self._leaf(node)
        except UnknownAttribute:
            if unknown_is_false:
                return Q(pk__in=[])
            raise

    def _leaf(self, node) -> Q:
        if isinstance(node, Present):
            return self._present(self._field(node.attr_path))
        if isinstance(node, Comparison):
            if isinstance(node.value, str) and not is_text(node.value):
                raise ScimError(400, "The filter compares with text that is not valid Unicode.",
                                "invalidFilter")
            return self._compare(self._field(node.attr_path), node.op.value, node.value)
        if isinstance(node, ValuePath):
            return self._value_path(node)
        raise ScimError(400, "Unsupported filter expression.", "invalidFilter")

    def _field(self, path: AttrPath) -> Field:
        key = attribute_key(path, self.core_urn)
        if path.attr.lower() in NEVER_FILTERABLE:
            raise ScimError(400, f"'{path}' cannot be filtered on.", "invalidFilter")
        field = self.fields.get(key)
        if field is None:
            raise UnknownAttribute(path)
        return field

    @staticmethod
    def _present(field: Field) -> Q:
        if field.kind in ("boolean", "datetime", "id"):
            return Q(**{f"{field.lookup}__isnull": False})
        if field.kind == "reference":
            return Q(**{f"{field.lookup}__isnull": False})
        return Q(**{f"{field.lookup}__isnull": False}) & ~Q(**{field.lookup: ""})

    def _compare(self, field: Field, op: str, value) -> Q:
        if field.kind == "multi":
            return _multi_compare(field.lookup, None, op, value)
        if field.kind == "multi_type":
            return _type_compare(field.lookup, op, value)
        if field.kind == "complex_multi":
            if not field.sub:
                raise ScimError(400, "Name the part of the address (addresses.locality).", "invalidFilter")
            return _part_compare(field.lookup, None, field.sub, op, value)
        if field.kind == "boolean":
            if op not in ("eq", "ne"):
                raise ScimError(400, f"'{op}' does not apply to a boolean.", "invalidFilter")
            value = _boolean(value)
            q = Q(**{field.lookup: value})
            return ~q if op == "ne" else q
        if field.kind in ("id", "reference"):
            return _id_compare(field, op, value)
        if field.kind == "datetime":
            value = _datetime(value)
        elif value is None:
            q = Q(**{f"{field.lookup}__isnull": True}) | Q(**{field.lookup: ""})
            return ~q if op == "ne" else q
        elif not isinstance(value, str):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        if field.key_lookup and op in ("eq", "ne"):
            q = Q(**{field.key_lookup: user_name_key(value)})
            return ~q if op == "ne" else q
        if field.lower_indexed and op in ("eq", "ne"):
            q = Q(**{f"{field.lookup}__lower": value.lower()})
            return ~q if op == "ne" else q
        ci = "" if field.case_exact or field.kind == "datetime" else "i"
        lookups = {"eq": f"{ci}exact", "ne": f"{ci}exact", "co": f"{ci}contains", "sw": f"{ci}startswith",
                   "ew": f"{ci}endswith", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
        if field.kind == "datetime" and op in ("co", "sw", "ew"):
            raise ScimError(400, f"'{op}' does not apply to a date.", "invalidFilter")
        q = Q(**{f"{field.lookup}__{lookups[op]}": value})
        return ~q if op == "ne" else q

    def _value_path(self, node: ValuePath) -> Q:
        base = attribute_key(node.attr_path, self.core_urn)
        field = self.fields.get(base)
        if field is not None and field.kind == "complex_multi":
            return _address_value_path(field.lookup, node.val_filter)
        if field is None:
            raise UnknownAttribute(node.attr_path)
        if field.kind not in ("multi", "reference"):
            raise ScimError(400, f"'{node.attr_path}' cannot be filtered with [...].", "invalidFilter")
        if field.kind == "reference":  # members[value eq "..."], groups[value eq "..."]
            inner = node.val_filter
            if not (isinstance(inner, Comparison) and inner.attr_path.attr.lower() == "value"):
                raise ScimError(400, "Only [value eq \"...\"] selects members.", "invalidFilter")
            return self._compare(field, inner.op.value, inner.value)
        return _multi_value_path(field.lookup, node.val_filter)


def _id_compare(field: Field, op: str, value) -> Q:
    """id eq "<uuid>"; null is "no value" (no such row, or no related row), never the text ""
    that a UUID column cannot hold."""
    if op not in ("eq", "ne"):
        raise ScimError(400, f"'{op}' does not apply to an identifier.", "invalidFilter")
    if value is None:
        q = Q(**{f"{field.lookup}__isnull": True})
    else:
        parsed = uuid_or_none(value)
        q = Q(**{field.lookup: parsed}) if parsed else Q(pk__in=[])
    return ~q if op == "ne" else q


def _multi_value_path(lookup: str, node) -> Q:
    """emails[type eq "work"], emails[value co "x"], emails[type eq "work" and value eq "x"]."""
    terms = node.terms if isinstance(node, LogicalExpr) and node.op.value == "and" else (node,)
    kind, compare = None, None
    for term in terms:
        if isinstance(term, Comparison) and term.attr_path.attr.lower() == "type" and term.op.value == "eq":
            kind = str(term.value or "")
        elif isinstance(term, Comparison) and term.attr_path.attr.lower() == "value":
            compare = (term.op.value, term.value)
        elif isinstance(term, Present) and term.attr_path.attr.lower() == "value":
            compare = ("pr", None)
        else:
            raise ScimError(400, "Inside [...] use type eq and a test of value.", "invalidFilter")
    if compare is None:
        return Q(**{f"{lookup}__contains": f"\n{kind.lower()}\t"})
    op, value = compare
    if op == "pr":
        return Q(**{f"{lookup}__contains": f"\n{(kind or '').lower()}\t"}) if kind else ~Q(**{lookup: ""})
    return _multi_compare(lookup, kind, op, value)


def _text(value) -> str:
    return clean_index_text(str(value if value is not None else "")).lower()


def _type_compare(lookup: str, op: str, value) -> Q:
    """emails.type eq "work": the type opens each line of the index."""
    text = re.escape(_text(value))
    patterns = {"eq": rf"\n{text}\t", "ne": rf"\n{text}\t", "sw": rf"\n{text}[^\t\n]*\t",
                "ew": rf"\n[^\t\n]*{text}\t", "co": rf"\n[^\t\n]*{text}[^\t\n]*\t"}
    if op not in patterns:
        raise ScimError(400, f"'{op}' does not apply to a type.", "invalidFilter")
    q = Q(**{f"{lookup}__regex": patterns[op]})
    return ~q if op == "ne" else q


def _part_compare(lookup: str, kind: str | None, sub: str, op: str, value) -> Q:
    """addresses.locality eq "oslo": lines read "<type>\t<part>\t<value>"."""
    head = rf"\n{re.escape(kind.lower())}\t" if kind is not None else r"\t"
    head += rf"{re.escape(sub)}\t"
    if op == "pr":
        return Q(**{f"{lookup}__regex": head})
    text = re.escape(_text(value))
    patterns = {"eq": rf"{head}{text}\n", "ne": rf"{head}{text}\n", "sw": rf"{head}{text}",
                "ew": rf"{head}[^\n]*{text}\n", "co": rf"{head}[^\n]*{text}"}
    if op not in patterns:
        raise ScimError(400, f"'{op}' does not apply to an address.", "invalidFilter")
    q = Q(**{f"{lookup}__regex": patterns[op]})
    return ~q if op == "ne" else q


def _address_value_path(lookup: str, node) -> Q:
    """addresses[type eq "work" and locality eq "Oslo"]: one type test and one part test."""
    terms = node.terms if isinstance(node, LogicalExpr) and node.op.value == "and" else (node,)
    kind, test = None, None
    for term in terms:
        attr = term.attr_path.attr.lower() if isinstance(term, Comparison | Present) else ""
        if isinstance(term, Comparison) and attr == "type" and term.op.value == "eq":
            kind = str(term.value or "")
        elif attr in {p.lower() for p in ADDRESS_PARTS} and test is None:
            test = (attr, "pr" if isinstance(term, Present) else term.op.value,
                    None if isinstance(term, Present) else term.value)
        else:
            raise ScimError(400, "Inside addresses[...] use type eq and one test of a part.", "invalidFilter")
    if test is None:
        return Q(**{f"{lookup}__regex": rf"\n{re.escape((kind or '').lower())}\t"})
    return _part_compare(lookup, kind, *test)


def _multi_compare(lookup: str, kind: str | None, op: str, value) -> Q:
    if op not in ("eq", "ne", "co", "sw", "ew"):
        raise ScimError(400, f"'{op}' does not apply to a multi-valued attribute.", "invalidFilter")
    text = clean_index_text(str(value or "")).lower()
    prefix = f"\n{kind.lower()}\t" if kind is not None else "\t"
    pattern = {"eq": f"{prefix}{text}\n", "ne": f"{prefix}{text}\n", "co": text,
               "sw": f"{prefix}{text}", "ew": f"{text}\n"}[op]
    q = Q(**{f"{lookup}__contains": pattern})
    if op == "co" and kind is not None:  # the contained text must sit in a value of that type
        q = Q(**{f"{lookup}__regex": _line_regex(kind, text)})
    return ~q if op == "ne" else q


def _line_regex(kind: str, text: str) -> str:
    return rf"\n{re.escape(kind.lower())}\t[^\n]*{re.escape(text)}"


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ScimError(400, "Compare a boolean with true or false.", "invalidFilter")


def _datetime(value) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ScimError(400, "Dates are ISO 8601 (for example 2026-01-31T12:00:00Z).", "invalidFilter")
    if parsed.tzinfo is None:
        raise ScimError(400, "Dates need a time zone (for example Z).", "invalidFilter")
    return parsed


USERS = FilterTranslator(USER_FIELDS, USER_CORE)
GROUPS = FilterTranslator(GROUP_FIELDS, GROUP_CORE)
