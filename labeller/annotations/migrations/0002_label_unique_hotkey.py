from django.db import migrations, models


def blank_duplicate_hotkeys(apps, schema_editor):
    """Where labels of a project already share a hotkey (concurrent edits did that), the oldest keeps it.

    The others lose the key and move to a new version, so an editor holding the old one reloads.
    """
    Label = apps.get_model("annotations", "Label")
    seen, duplicates = set(), []
    rows = Label.objects.exclude(hotkey="").order_by("project_id", "hotkey", "pk")
    for pk, project_id, hotkey in rows.values_list("pk", "project_id", "hotkey").iterator():
        if (project_id, hotkey) in seen:
            duplicates.append(pk)
        seen.add((project_id, hotkey))
    Label.objects.filter(pk__in=duplicates).update(hotkey="", version=models.F("version") + 1)


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0001_initial"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(blank_duplicate_hotkeys, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="label",
            constraint=models.UniqueConstraint(
                condition=models.Q(("hotkey", ""), _negated=True),
                fields=("project", "hotkey"),
                name="unique_label_hotkey",
            ),
        ),
    ]
