"""What counts as text in a request. JSON's \\u escapes, and the string escapes of SCIM's filter and
path grammar, can spell a lone surrogate: no character, not encodable as UTF-8, and storable in
neither database. Each place that turns client input into a string asks `is_text` first."""


def is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
