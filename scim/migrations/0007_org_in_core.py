import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_initial'),
        ('scim', '0006_address_index'),
    ]

    run_before = [('accounts', '0010_org_in_core')]

    # Organization moved from accounts to the kernel (core) under its old table name: only
    # Django's picture of the models changes, so every operation here is state-only.
    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='groupmapping',
                name='org',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='core.organization'),
            ),
            migrations.AlterField(
                model_name='scimgroup',
                name='org',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='core.organization'),
            ),
            migrations.AlterField(
                model_name='scimtoken',
                name='org',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='core.organization'),
            ),
            migrations.AlterField(
                model_name='scimuser',
                name='org',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='core.organization'),
            ),
        ]),
    ]
