"""Rewrite every encrypted field under the first FIELD_ENCRYPTION_KEY (after a rotation)."""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from tenants import encryption
from tenants.fields import EncryptedJSONField


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the current key, so old keys can be retired."

    def handle(self, *args, **options) -> None:
        for model in apps.get_models():
            fields = [f for f in model._meta.fields if isinstance(f, EncryptedJSONField)]
            if fields:
                self._rewrite(model, fields)

    def _rewrite(self, model, fields) -> None:  # noqa: ANN001 - a model class, its fields
        names = [f.attname for f in fields]
        stale = 0
        with transaction.atomic():
            for pk, *stored in self._raw(model, [f.column for f in fields]):
                if all(encryption.is_current(value) for value in stored if value):
                    continue
                obj = model.objects.select_for_update().get(pk=pk)
                obj.save(update_fields=names)
                stale += 1
        self.stdout.write(f"{model._meta.label}: re-encrypted {stale} row(s)")

    @staticmethod
    def _raw(model, columns: list[str]) -> list[tuple]:  # noqa: ANN001 - a model class
        """The stored ciphertexts, as the ORM would decrypt them on the way out."""
        quote = connection.ops.quote_name
        table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {pk}, {', '.join(map(quote, columns))} FROM {table}")  # noqa: S608
            return cursor.fetchall()
