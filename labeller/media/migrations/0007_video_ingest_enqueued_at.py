from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('media', '0006_frame_content_sha256'),
    ]

    operations = [
        migrations.AddField(
            model_name='video',
            name='ingest_enqueued_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
