from django.db import migrations


class Migration(migrations.Migration):
    """django-scim2's user mixin added these columns; nothing reads them (the SCIM server keeps each
    org's userName and externalId on scim.ScimUser), and the library is no longer a dependency."""

    dependencies = [
        ('accounts', '0012_agent_settings_moved'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='user',
            name='scim_external_id',
        ),
        migrations.RemoveField(
            model_name='user',
            name='scim_id',
        ),
        migrations.RemoveField(
            model_name='user',
            name='scim_username',
        ),
    ]
