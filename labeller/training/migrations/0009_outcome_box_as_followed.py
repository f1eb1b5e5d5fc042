from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0008_run_refiner_artifact'),
    ]

    operations = [
        migrations.AddField(
            model_name='proposaloutcome',
            name='box_as_followed',
            field=models.JSONField(blank=True, null=True),
        ),
    ]
