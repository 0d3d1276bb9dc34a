from django.db import migrations


class Migration(migrations.Migration):
    """The org's agent settings left accounts.SecurityPolicy for agents.AgentPolicy (copied first)."""

    dependencies = [
        ('accounts', '0011_membership_deactivated_by_directory'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='securitypolicy',
            name='agent_token_ttl_seconds',
        ),
        migrations.RemoveField(
            model_name='securitypolicy',
            name='deprovision_agents',
        ),
        migrations.RemoveField(
            model_name='securitypolicy',
            name='deprovision_fallback_owner',
        ),
        migrations.RemoveField(
            model_name='securitypolicy',
            name='secret_overlap_max_seconds',
        ),
        migrations.RemoveField(
            model_name='securitypolicy',
            name='token_alg',
        ),
    ]
