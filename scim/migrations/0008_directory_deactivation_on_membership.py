"""Whether the directory switched a member off was read from ScimUser.active by accounts; it is now
the membership's own `deactivated_by_directory`, filled here from what SCIM recorded."""

from django.db import migrations


def flag_deactivated(apps, schema_editor):
    Membership = apps.get_model("accounts", "Membership")
    ScimUser = apps.get_model("scim", "ScimUser")
    off = ScimUser.objects.filter(active=False).values_list("membership_id", flat=True)
    Membership.objects.filter(pk__in=list(off)).update(deactivated_by_directory=True)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0011_membership_deactivated_by_directory'),
        ('scim', '0007_org_in_core'),
    ]

    operations = [
        migrations.RunPython(flag_deactivated, migrations.RunPython.noop),
    ]
