"""Every admin page × every role × own and other tenant, generated from the admin registry.

For each ModelAdmin in `admin.site._registry` (one registered later is picked up by
itself): every page it serves (GET), its add, change and delete forms (POST), every admin
action, the autocomplete view of every relation and the choices of every relation in its
forms; as the operator, a tenant admin and an auditor of tenant A, an admin of tenant B
only, a user with no membership, and an inactive member; on a row of tenant A and one of B.

What must hold:
- nothing of a tenant the user is not a member of appears on any page, export or list of
  choices, and its rows answer exactly as a row that does not exist;
- an auditor views, searches and exports, and no POST of theirs changes the database, though
  the same POST by the operator does;
- operator-only admins (users, groups, sign-in attempts) answer 403 to every member;
- without a membership, or inactive, every page is the sign-in page.
"""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import models
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from tests.admin_forms import read_form
from tests.admin_world import (
    ACCESS,
    MARKERS,
    ROLES,
    SIDES,
    SIGNED_OUT,
    build_world,
    hidden_sides,
    is_scoped,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_sign_in_attempts(settings):
    # django-axes clears sign-in attempts, rows of the world, on every successful sign-in.
    settings.AXES_RESET_ON_SUCCESS = False


LOGIN = reverse("admin:login")
AUTOCOMPLETE = reverse("admin:autocomplete")
MISSING_PK = 10**9
PAGE_KINDS = {"changelist", "add", "change", "delete", "history"}
# The pks of the rows a page shows, from its template context.
SHOWN = {
    "changelist": lambda context: [row.pk for row in context["cl"].result_list],
    "change": lambda context: [context["original"].pk],
    "history": lambda context: [context["object"].pk],
}
# Actions that fail in a library, not here: the matrix checks they still do, so that the
# entry goes when the library is fixed. Only the operator reaches them.
BROKEN_ACTIONS = {
    # django-axes 8.3.1 reads request.axes_attempt_time, which it sets on sign-in requests
    # only; `manage.py axes_reset` does the same job.
    ("axes.AccessAttempt", "cleanup_expired_attempts"): AttributeError,
}
MODEL_ADMINS = sorted(admin.site._registry.values(), key=lambda ma: ma.opts.label)
CASES = [
    pytest.param(model_admin, role, id=f"{model_admin.opts.label}-{role}")
    for model_admin in MODEL_ADMINS
    for role in ROLES
]


def access(role: str, model_admin: admin.ModelAdmin, side: str) -> str:
    """What `role` may do with `side`'s rows in this admin: "signed out", "forbidden" (an
    operator-only admin), "none" (another tenant's rows), "view" or "change"."""
    if role in SIGNED_OUT:
        return "signed out"
    if role == "operator":
        return "change"
    if not is_scoped(model_admin):
        return "forbidden"
    return ACCESS[role].get(side, "none")


def url(model_admin: admin.ModelAdmin, kind: str, *args: Any) -> str:
    return reverse(
        f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_{kind}", args=args
    )


def pages(model_admin: admin.ModelAdmin, row: models.Model) -> list[tuple[str, str, str | None]]:
    """(kind, url, the same url for a missing row, if it names one) of every named page
    of the admin; pages of one row name `row`."""
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_"
    found = []
    for pattern in model_admin.get_urls():
        if not pattern.name:  # Django's bare "<id>/", a redirect to the change page
            continue
        kind = pattern.name.removeprefix(prefix)
        params = set(pattern.pattern.regex.groupindex)
        # One argument is the row's id ("object_id", or "id" for a user's password page).
        assert len(params) <= 1, f"{pattern.name}: teach the matrix its {params}"
        if params:
            found.append((kind, url(model_admin, kind, row.pk), url(model_admin, kind, MISSING_PK)))
        else:
            found.append((kind, url(model_admin, kind), None))
    return found


def text_of(response: HttpResponse) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    return response.content.decode()


def assert_hidden(text: str, role: str, where: str) -> None:
    for side in hidden_sides(role):
        assert MARKERS[side] not in text, f"{where}: {role} sees tenant {side}'s rows"


def assert_sign_in_page(response: HttpResponse, where: str) -> None:
    assert response.status_code == 302, where
    assert response["Location"].startswith(LOGIN), where


def operator_request(world: Any) -> Any:
    request = RequestFactory().get("/")
    request.user = world.users["operator"]
    return request


def snapshot(world: Any, tenants: list[Any] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the admin can change (their many-to-many links too), or,
    given `tenants`, the rows of those tenants in the tenant-scoped tables."""
    request = operator_request(world)
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for model, model_admin in admin.site._registry.items():
        if not any(
            (
                model_admin.has_add_permission(request),
                model_admin.has_change_permission(request),
                model_admin.has_delete_permission(request),
            )
        ):
            continue  # an append-only log: reading it may add to it
        rows = model._base_manager.order_by("pk")
        if tenants is not None:
            if not is_scoped(model_admin):
                continue
            ids = [tenant.pk for tenant in tenants]
            rows = rows.filter(**{f"{model_admin.tenant_field}__in": ids})
        columns = [f.attname for f in model._meta.concrete_fields]
        tables[model._meta.label] = list(rows.values_list(*columns))
        if tenants is None:
            for m2m in model._meta.many_to_many:
                through = m2m.remote_field.through
                tables[through._meta.label] = list(
                    through._base_manager.order_by("pk").values_list()
                )
    return tables


def signed_in(client: Client, world: Any, role: str) -> Client:
    client.force_login(world.users[role])
    return client


@pytest.mark.parametrize(("model_admin", "role"), CASES)
def test_it_answers_every_page_as_the_role_may(client, model_admin, role):
    world = build_world()
    signed_in(client, world, role)
    for side in SIDES:
        may = access(role, model_admin, side)
        row = world.target(model_admin.model, side)
        for kind, page, missing in pages(model_admin, row):
            where = f"GET {page} ({kind}, tenant {side}) as {role}"
            response = client.get(page)
            text = text_of(response)
            assert_hidden(text, role, where)
            if may == "signed out":
                assert_sign_in_page(response, where)
            elif may == "forbidden":
                assert response.status_code == 403, where
            elif may == "none" and missing:
                absent = client.get(missing)
                assert (response.status_code, response.get("Location")) == (
                    absent.status_code,
                    absent.get("Location"),
                ), f"{where}: answers otherwise than for a row that does not exist"
                assert_hidden(text_of(client.get(page, follow=True)), role, where)
            elif may in ("view", "change") and kind in SHOWN:
                assert response.status_code == 200, where
                assert row.pk in SHOWN[kind](response.context), f"{where}: the row is not shown"
            if may == "view":
                assert 'name="_save"' not in text, f"{where}: a save button for an auditor"
                if kind in ("add", "delete"):
                    assert response.status_code == 403, where


def probes(operator: Client, model_admin: admin.ModelAdmin, row: models.Model, side: str):
    """(kind, url, data) of the add, change and delete forms as the operator would submit
    them for `row`'s tenant: filled in, with one value changed (None if none can be),
    confirmed."""
    form_id = f"{model_admin.opts.model_name}_form"
    add, change = url(model_admin, "add"), url(model_admin, "change", row.pk)
    # Typed text names no tenant: a page echoing it back shows nothing of theirs.
    filled = read_form(text_of(operator.get(add)), form_id).filled(MARKERS[side], f"fresh-{side}")
    yield "add", add, filled
    yield "change", change, read_form(text_of(operator.get(change)), form_id).changed()
    yield "delete", url(model_admin, "delete", row.pk), {"post": "yes"}


def may_submit(page: HttpResponse, kind: str) -> bool:
    """Whether the role's own view of the form page offers to submit it."""
    if page.status_code != 200 or page.context is None:
        return False
    if kind == "change":
        return bool(page.context["has_change_permission"])
    if kind == "delete":
        return not (page.context["perms_lacking"] or page.context["protected"])
    return True


@pytest.mark.parametrize(("model_admin", "role"), CASES)
def test_it_changes_through_forms_only_what_the_role_may(client, model_admin, role):
    world = build_world()
    operator = signed_in(Client(), world, "operator")
    signed_in(client, world, role)
    for side in SIDES:
        may = access(role, model_admin, side)
        row = world.target(model_admin.model, side)
        for kind, page, data in probes(operator, model_admin, row, side):
            where = f"POST {page} ({kind}, tenant {side}) as {role}"
            allowed = may == "change" and may_submit(client.get(page), kind)
            before, before_side = snapshot(world), snapshot(world, [world.tenants[side]])
            response = client.post(page, data or {})
            assert_hidden(text_of(response), role, where)
            if may == "signed out":
                assert_sign_in_page(response, where)
            if allowed:
                errors = response.context and response.context.get("errors")
                assert response.status_code == 302, f"{where}: refused: {errors}"
                if data is not None:  # None: the form has nothing to change
                    assert snapshot(world) != before, f"{where}: saved, yet nothing changed"
            elif may == "none" and kind == "add":
                # The form is the role's own tenant's; the other tenant must not gain a row.
                assert snapshot(world, [world.tenants[side]]) == before_side, where
            else:
                assert snapshot(world) == before, f"{where}: changed the database"


def exports(world: Any, model_admin: admin.ModelAdmin, names: list[str]) -> set[str]:
    """The actions named "export…", and any that gives the operator a file to download."""
    operator = signed_in(Client(), world, "operator")
    row = world.target(model_admin.model, "a")
    found = {name for name in names if name.startswith("export")}
    for name in names:
        if name == "delete_selected" or (model_admin.opts.label, name) in BROKEN_ACTIONS:
            continue
        picked = {"action": name, ACTION_CHECKBOX_NAME: [row.pk]}
        response = operator.post(url(model_admin, "changelist"), picked)
        if "attachment" in response.get("Content-Disposition", ""):
            found.add(name)
    return found


@pytest.mark.parametrize(("model_admin", "role"), CASES)
def test_it_runs_actions_only_as_the_role_may(client, model_admin, role):
    world = build_world()
    # Every action declared, even one no one may run (get_actions() leaves those out).
    declared = [name for _, name, _ in model_admin._get_base_actions()]
    # Deleting goes last: the other actions need the row.
    names = sorted(declared, key=lambda name: name == "delete_selected")
    changelist = url(model_admin, "changelist")
    downloads = exports(world, model_admin, names)
    signed_in(client, world, role)
    for side in SIDES:
        may = access(role, model_admin, side)
        row = world.target(model_admin.model, side)
        for name in names:
            where = f"action {name} on {model_admin.opts.label} of tenant {side} as {role}"
            before = snapshot(world)
            picked = {"action": name, ACTION_CHECKBOX_NAME: [row.pk], "post": "yes"}
            broken = BROKEN_ACTIONS.get((model_admin.opts.label, name))
            if broken and role == "operator":
                with pytest.raises(broken):
                    client.post(changelist, picked)
                continue
            response = client.post(changelist, picked)
            text = text_of(response)
            assert_hidden(text, role, where)
            if may == "signed out":
                assert_sign_in_page(response, where)
            if may != "change":
                assert snapshot(world) == before, f"{where}: changed the database"
            if name in downloads and may in ("view", "change"):
                # Exports stay open to auditors.
                assert "attachment" in response.get("Content-Disposition", ""), where
                assert MARKERS[side] in text, f"{where}: the row is not in the export"


def relations(model: type[models.Model]) -> list[models.Field]:
    return [
        f
        for f in model._meta.get_fields()
        if f.is_relation and f.concrete and f.related_model in admin.site._registry
    ]


@pytest.mark.parametrize(("model_admin", "role"), CASES)
def test_it_offers_no_other_tenants_rows_to_choose(client, model_admin, role):
    world = build_world()
    hidden = world.hidden_rows(role)
    signed_in(client, world, role)
    opts = model_admin.opts
    for field in relations(model_admin.model):
        where = f"autocomplete for {opts.label}.{field.name} as {role}"
        query = {
            "app_label": opts.app_label,
            "model_name": opts.model_name,
            "field_name": field.name,
        }
        response = client.get(AUTOCOMPLETE, query)
        if role in SIGNED_OUT:
            assert_sign_in_page(response, where)
            continue
        assert response.status_code in (200, 403, 404), where
        assert_hidden(text_of(response), role, where)
        if response.status_code != 200:
            continue
        label = field.related_model._meta.label
        offered = {(label, str(result["id"])) for result in response.json()["results"]}
        assert not offered & {(model, str(pk)) for model, pk in hidden}, where
        remote = admin.site._registry[field.related_model]
        for side in ACCESS[role] if is_scoped(remote) else ():
            own = (label, str(world.target(field.related_model, side).pk))
            assert own in offered, f"{where}: tenant {side}'s own row is not offered"
    for side in SIDES:
        row = world.target(model_admin.model, side)
        for page in (url(model_admin, "add"), url(model_admin, "change", row.pk)):
            response = client.get(page)
            if response.status_code != 200 or "adminform" not in response.context:
                continue
            for name, formfield in response.context["adminform"].form.fields.items():
                if isinstance(formfield, forms.ModelChoiceField):
                    label = formfield.queryset.model._meta.label
                    offered = {(label, choice.pk) for choice in formfield.queryset}
                    assert not offered & hidden, f"{page} as {role}: {name} offers them"


@pytest.mark.parametrize("role", ROLES)
def test_it_shows_each_role_only_its_tenants_on_the_site_pages(client, role):
    world = build_world()
    signed_in(client, world, role)
    apps = sorted({model._meta.app_label for model in admin.site._registry})
    for page in [reverse("admin:index"), *(reverse("admin:app_list", args=[app]) for app in apps)]:
        response = client.get(page)
        assert_hidden(text_of(response), role, f"GET {page} as {role}")
        if role in SIGNED_OUT:
            assert_sign_in_page(response, f"GET {page} as {role}")
        else:
            assert response.status_code in (200, 404), page


def test_it_covers_every_registered_model_and_page():
    world = build_world()
    assert {case.values[0].model for case in CASES} == set(admin.site._registry)
    for model, model_admin in admin.site._registry.items():
        kinds = {kind for kind, _, _ in pages(model_admin, world.target(model, "a"))}
        assert kinds >= PAGE_KINDS, model
        assert world.target(model, "b").pk != world.target(model, "a").pk, model
