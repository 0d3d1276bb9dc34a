import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0009_user_scim_managed_by'),
        ('core', '0001_initial'),
    ]

    # Organization moved from accounts to the kernel (core) under its old table name: only
    # Django's picture of the models changes, so every operation here is state-only. The apps that
    # point at it re-point first (each declares run_before this one).
    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='user',
                name='scim_managed_by',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='core.organization'),
            ),
            migrations.AlterField(
                model_name='securitypolicy',
                name='org',
                field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='security_policy', serialize=False, to='core.organization'),
            ),
            migrations.AlterField(
                model_name='membership',
                name='org',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='core.organization'),
            ),
            migrations.AlterField(
                model_name='apikey',
                name='org',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='core.organization'),
            ),
            migrations.DeleteModel(
                name='Organization',
            ),
        ]),
    ]
