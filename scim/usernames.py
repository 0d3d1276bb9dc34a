"""The one spelling of a SCIM userName that uniqueness and `userName eq` filters compare.

RFC 7643 §4.1.1 makes userName caseExact false and unique within the service provider (here, per
org). "ÄLICE" and "älice", "ǅ" and "ǆ", a name and the same name with a zero-width space, or with
full-width letters, all name the same person to a reader and must collide. The key is NFKC
(compatibility forms: full-width, ligatures, "ǅ" as "Dž"), full case folding (not lower(): "ß" is
"ss", and SQLite's lower() folds ASCII alone), and no format characters (Unicode category Cf: zero
width spaces and joiners, bidirectional marks, soft hyphens), normalised again because folding and
removing can leave text that NFKC composes further. Repeated until it no longer changes, so the key
of a key is itself.
"""

import unicodedata

# The key is what the unique index holds: at most this many UTF-8 bytes (PostgreSQL's b-tree takes
# about 2,700 per entry). NFKC can lengthen a character up to 18 times, so a userName within its
# 254 characters can still exceed it; such a userName is refused.
KEY_MAX_BYTES = 1024


def _once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", text.casefold())


def user_name_key(user_name: str) -> str:
    key = _once(user_name)
    for _ in range(3):  # one pass is stable for every single character; sequences may need another
        again = _once(key)
        if again == key:
            break
        key = again
    return key


def key_fits(key: str) -> bool:
    return len(key.encode("utf-8")) <= KEY_MAX_BYTES
