"""Grants a SCIM group mapping made were tagged with a foreign key to scim.GroupMapping, so rbac's
tables pointed up at an adapter. They now carry an opaque `source` tag ("scim.mapping:<id>")."""

from django.db import migrations, models

TAG = "scim.mapping:"


def tags_from_mappings(apps, schema_editor):
    for name in ("RoleAssignment", "TeamMembership"):
        model = apps.get_model("rbac", name)
        for pk, mapping_id in model.objects.exclude(mapping=None).values_list("pk", "mapping_id"):
            model.objects.filter(pk=pk).update(source=f"{TAG}{mapping_id}")


def mappings_from_tags(apps, schema_editor):
    for name in ("RoleAssignment", "TeamMembership"):
        model = apps.get_model("rbac", name)
        for pk, source in model.objects.filter(source__startswith=TAG).values_list("pk", "source"):
            model.objects.filter(pk=pk).update(mapping_id=source.removeprefix(TAG))


class Migration(migrations.Migration):

    dependencies = [
        ('rbac', '0003_org_in_core'),
    ]

    operations = [
        migrations.AddField(
            model_name='roleassignment',
            name='source',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='teammembership',
            name='source',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(tags_from_mappings, mappings_from_tags),
        migrations.RemoveField(
            model_name='roleassignment',
            name='mapping',
        ),
        migrations.RemoveField(
            model_name='teammembership',
            name='mapping',
        ),
    ]
