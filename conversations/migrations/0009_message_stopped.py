from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0008_message_content_search"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="stopped",
            field=models.BooleanField(default=False, verbose_name="stopped"),
        ),
    ]
