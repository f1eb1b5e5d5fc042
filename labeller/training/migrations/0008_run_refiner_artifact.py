from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0007_outcome_chance'),
    ]

    operations = [
        migrations.AddField(
            model_name='trainingrun',
            name='refiner_artifact',
            field=models.CharField(blank=True, default='', max_length=500),
        ),
    ]
