"""userName uniqueness moves from lower(user_name) to a normalised key (scim.usernames): NFKC, case
folding, format characters removed. Existing rows get their key here. Where two rows of one org
already share a key (possible before: "alice" and "al<zero width space>ice", or "ÄLICE" and "älice"
on SQLite, whose lower() folds ASCII alone), the oldest keeps it and the others keep a null key,
which the unique index allows: they stay reachable by id, and take a key when their userName next
changes (refused while it collides)."""

import unicodedata

from django.db import migrations, models

KEY_MAX_BYTES = 1024


# A copy of scim.usernames.user_name_key as it was when this migration was written, so that the
# backfill means the same whatever that module becomes.
def _once(text):
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", text.casefold())


def user_name_key(user_name):
    key = _once(user_name)
    for _ in range(3):
        again = _once(key)
        if again == key:
            break
        key = again
    return key


def backfill(apps, schema_editor):
    ScimUser = apps.get_model("scim", "ScimUser")
    rows = ScimUser.objects.order_by("org_id", "created_at", "pk").only("pk", "org_id", "user_name")
    seen, batch = set(), []
    for row in rows.iterator(chunk_size=2000):
        key = user_name_key(row.user_name)
        if (row.org_id, key) in seen or len(key.encode("utf-8")) > KEY_MAX_BYTES:
            continue  # a later row of a collision (or an unindexable key) keeps a null key
        seen.add((row.org_id, key))
        row.user_name_key = key
        batch.append(row)
        if len(batch) >= 2000:
            ScimUser.objects.bulk_update(batch, ["user_name_key"])
            batch = []
    if batch:
        ScimUser.objects.bulk_update(batch, ["user_name_key"])


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0013_drop_django_scim2_columns'),
        ('core', '0001_initial'),
        ('scim', '0008_directory_deactivation_on_membership'),
    ]

    operations = [
        migrations.AddField(
            model_name='scimuser',
            name='user_name_key',
            field=models.CharField(editable=False, max_length=1024, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='scimuser',
            constraint=models.UniqueConstraint(fields=('org', 'user_name_key'), name='scim_user_name_key_unique'),
        ),
        migrations.RemoveConstraint(
            model_name='scimuser',
            name='scim_user_name_unique_ci',
        ),
    ]
