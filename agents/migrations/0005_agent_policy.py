import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


FIELDS = ("agent_token_ttl_seconds", "secret_overlap_max_seconds", "token_alg", "deprovision_agents",
          "deprovision_fallback_owner_id", "updated_at")


def settings_from_security_policy(apps, schema_editor):
    """Each org's agent settings were columns of accounts.SecurityPolicy; they move to this app's row."""
    SecurityPolicy = apps.get_model("accounts", "SecurityPolicy")
    AgentPolicy = apps.get_model("agents", "AgentPolicy")
    for values in SecurityPolicy.objects.values("org_id", *FIELDS):
        AgentPolicy.objects.create(**values)


def settings_to_security_policy(apps, schema_editor):
    SecurityPolicy = apps.get_model("accounts", "SecurityPolicy")
    AgentPolicy = apps.get_model("agents", "AgentPolicy")
    for values in AgentPolicy.objects.values("org_id", *FIELDS):
        SecurityPolicy.objects.filter(org_id=values.pop("org_id")).update(**values)


class Migration(migrations.Migration):

    # Copied before accounts drops those columns.
    run_before = [('accounts', '0012_agent_settings_moved')]


    dependencies = [
        ('accounts', '0011_membership_deactivated_by_directory'),
        ('agents', '0004_credential_kernel'),
        ('core', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='AgentPolicy',
            fields=[
                ('org', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='agent_policy', serialize=False, to='core.organization')),
                ('agent_token_ttl_seconds', models.PositiveIntegerField(default=300, validators=[django.core.validators.MinValueValidator(30), django.core.validators.MaxValueValidator(3600)])),
                ('secret_overlap_max_seconds', models.PositiveIntegerField(default=86400, validators=[django.core.validators.MinValueValidator(0), django.core.validators.MaxValueValidator(604800)])),
                ('token_alg', models.CharField(choices=[('ES256', 'ES256'), ('EdDSA', 'EdDSA'), ('RS256', 'RS256')], default='ES256', max_length=10)),
                ('deprovision_agents', models.CharField(choices=[('suspend', 'Suspend them and revoke their credentials'), ('reassign', 'Hand them to the fallback owner')], default='suspend', max_length=10)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('deprovision_fallback_owner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='accounts.membership')),
            ],
        ),
        migrations.RunPython(settings_from_security_policy, settings_to_security_policy),
    ]
