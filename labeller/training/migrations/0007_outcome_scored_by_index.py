from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0006_outcome_shot_labelled'),
    ]

    operations = [
        migrations.AddField(
            model_name='proposaloutcome',
            name='scored_by_index',
            field=models.BooleanField(default=True),
        ),
    ]
