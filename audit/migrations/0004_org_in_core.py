import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_org_index_covered_by_composites'),
        ('core', '0001_initial'),
    ]

    run_before = [('accounts', '0010_org_in_core')]

    # Organization moved from accounts to the kernel (core) under its old table name: only
    # Django's picture of the models changes, so every operation here is state-only.
    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='auditentry',
                name='org',
                field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='core.organization'),
            ),
        ]),
    ]
