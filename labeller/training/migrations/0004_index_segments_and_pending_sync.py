"""The index is stored as a base snapshot plus delta segments, and a project has at most
one pending sync. Existing indexes are a base at their current version with no segments."""

from django.db import migrations, models


def existing_files_are_bases(apps, schema_editor):
    ProjectIndex = apps.get_model("training", "ProjectIndex")
    ProjectIndex.objects.update(base_version=models.F("version"))


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0003_proposal_outcomes"),
    ]

    operations = [
        migrations.AddField(
            model_name="projectindex",
            name="base_version",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="projectindex",
            name="segments",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="projectindex",
            name="sync_requested_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="projectindex",
            name="event_watermark",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="projectindex",
            name="reconciled_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(existing_files_are_bases, migrations.RunPython.noop),
    ]
