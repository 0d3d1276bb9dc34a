from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0010_org_in_core'),
    ]

    operations = [
        migrations.AddField(
            model_name='membership',
            name='deactivated_by_directory',
            field=models.BooleanField(default=False),
        ),
    ]
