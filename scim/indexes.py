"""The text indexes a ScimUser keeps of its multi-valued attributes, so that SCIM filters on them
(`emails[type eq "work" and value co "@corp"]`) are plain `contains` lookups on every database.

One line per value, lower-cased and framed by newlines: "<type>\\t<value>" for emails and phone
numbers, "<type>\\t<part>\\t<value>" for each part of an address (scim.protocol.filters reads them).
"""

ADDRESS_PARTS = ("formatted", "streetAddress", "locality", "region", "postalCode", "country")


def clean_index_text(value: str) -> str:
    """A value as the filter indexes hold it: no newline or tab (they separate lines and fields)."""
    return value.replace("\n", " ").replace("\t", " ")


def multi_index(items: list[dict]) -> str:
    if not items:
        return ""
    lines = [f"{clean_index_text(i.get('type', ''))}\t{clean_index_text(i.get('value', ''))}" for i in items]
    return ("\n" + "\n".join(lines) + "\n").lower()


def address_index(items: list[dict]) -> str:
    lines = [f"{clean_index_text(i.get('type', ''))}\t{part.lower()}\t{clean_index_text(i[part])}"
             for i in items for part in ADDRESS_PARTS if i.get(part)]
    return ("\n" + "\n".join(lines) + "\n").lower() if lines else ""
