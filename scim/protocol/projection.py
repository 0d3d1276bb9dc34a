"""`attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) on a finished representation."""

from scim2_models import InvalidPathException, Path

from scim.protocol.errors import ScimError
from scim.protocol.filters import ENTERPRISE

ALWAYS = {"id", "schemas"}
EXTENSIONS = {ENTERPRISE.lower()}  # returned "always"; `meta.resourceType` is kept too


def _paths(raw: str | list | None) -> list[tuple[str | None, str, str | None]]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else str(raw).split(",")
    paths = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if item.lower() in EXTENSIONS:  # a whole extension
            paths.append((item.lower(), "", None))
            continue
        try:
            node = Path(item).ast
        except (InvalidPathException, ValueError):
            # A bare schema URN (the whole extension) is allowed too.
            if item.lower().startswith("urn:"):
                paths.append((item.lower(), "", None))
                continue
            raise ScimError(400, f"'{item}' is not an attribute path.", "invalidValue")
        attr_path = getattr(node, "attr_path", node)
        paths.append(((attr_path.uri or "").lower() or None, attr_path.attr.lower(),
                      (attr_path.sub_attr or getattr(node, "sub_attr", None) or "").lower() or None))
    return paths


def _key_of(body: dict, urn: str | None, attr: str, core: str) -> tuple[dict, str] | None:
    """Where (urn, attr) lives in body: the top level for the core schema, else the extension."""
    if urn and urn != core.lower():
        container = next((v for k, v in body.items() if k.lower() == urn and isinstance(v, dict)), None)
        if container is None:
            return None
        if not attr:
            return body, next(k for k in body if k.lower() == urn)
        key = next((k for k in container if k.lower() == attr), None)
        return (container, key) if key else None
    key = next((k for k in body if k.lower() == attr), None)
    return (body, key) if key else None


def project(body: dict, attributes, excluded, core: str) -> dict:
    wanted, unwanted = _paths(attributes), _paths(excluded)
    if wanted:
        out = {k: body[k] for k in body if k in ALWAYS}
        if "meta" in body:
            out["meta"] = {"resourceType": body["meta"]["resourceType"]}
        for urn, attr, sub in wanted:
            found = _key_of(body, urn, attr, core)
            if found is None:
                continue
            container, key = found
            target = out if container is body else out.setdefault(
                next(k for k in body if body[k] is container), {})
            value = container[key]
            if sub and isinstance(value, dict):
                part = next((k for k in value if k.lower() == sub), None)
                if part is not None:
                    target.setdefault(key, {})[part] = value[part]
            elif sub and isinstance(value, list):
                kept = []
                for item in value:
                    item = item if isinstance(item, dict) else {}
                    part = next((k for k in item if k.lower() == sub), None)
                    kept.append({part: item[part]} if part else {})
                if any(kept):
                    target[key] = [k for k in kept if k]
            else:
                target[key] = value
        return out
    if unwanted:
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
        for urn, attr, sub in unwanted:
            found = _key_of(out, urn, attr, core)
            if found is None:
                continue
            container, key = found
            if key in ALWAYS and container is out:
                continue
            if sub and isinstance(container[key], dict):
                container[key] = {k: v for k, v in container[key].items() if k.lower() != sub}
            elif sub and isinstance(container[key], list):
                container[key] = [_without(i, sub) for i in container[key]]
            else:
                del container[key]
        return out
    return body


def _without(item, sub: str):
    return {k: v for k, v in item.items() if k.lower() != sub} if isinstance(item, dict) else item
