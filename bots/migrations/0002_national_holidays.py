from django.db import migrations

from bots.holidays import FIRST_YEAR, LAST_YEAR, national_holidays


def load(apps, schema_editor):
    Holiday = apps.get_model("bots", "Holiday")
    known = set(Holiday.objects.filter(bot__isnull=True).values_list("date", flat=True))
    rows = [
        Holiday(bot=None, date=day, name=name)
        for year in range(FIRST_YEAR, LAST_YEAR + 1)
        for day, name in national_holidays(year)
        if day not in known
    ]
    Holiday.objects.bulk_create(rows)


def unload(apps, schema_editor):
    apps.get_model("bots", "Holiday").objects.filter(bot__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("bots", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
