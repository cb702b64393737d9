"""Roles without a superuser's help: a membership signs one in, and tenant admins invite,
remove and reset the members of their own tenant, never anyone else's account."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()

LOGIN = reverse("admin:login")
INDEX = reverse("admin:index")
MEMBERS = reverse("admin:tenants_membership_changelist")
ADD_MEMBER = reverse("admin:tenants_membership_add")
GOOD_PASSWORD = "tea-kettle-harbour-91"


def sign_in(client, username, password):
    form = {"username": username, "password": password, "next": INDEX}
    return client.post(LOGIN, form, HTTP_ACCEPT_LANGUAGE="en")


def shut_out(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


def membership_url(membership, view="change"):
    return reverse(f"admin:tenants_membership_{view}", args=[membership.pk])


def links_in(response) -> list[str]:
    """The set-password links the admin was shown."""
    texts = " ".join(str(message) for message in get_messages(response.wsgi_request))
    return re.findall(r"http://testserver/admin/set-password/\S+/", texts)


def reset_passwords(client, *memberships):
    picked = {"action": "reset_password", "_selected_action": [m.pk for m in memberships]}
    return client.post(MEMBERS, picked, HTTP_ACCEPT_LANGUAGE="en")


# --- signing in ------------------------------------------------------------------------


def test_it_signs_in_a_member_without_staff_status(client, tenant_a):
    member = MembershipFactory(user__username="mei", user__password=GOOD_PASSWORD).user
    assert not member.is_staff
    response = sign_in(client, "mei", GOOD_PASSWORD)
    assert (response.status_code, response["Location"]) == (302, INDEX)
    assert client.get(INDEX).status_code == 200


@pytest.mark.parametrize("is_staff", [False, True])
def test_it_refuses_an_account_without_a_membership(client, db, is_staff):
    UserFactory(username="drifter", password=GOOD_PASSWORD, is_staff=is_staff)
    response = sign_in(client, "drifter", GOOD_PASSWORD)
    assert response.status_code == 200
    assert "of a tenant member or operator account" in response.content.decode()
    assert shut_out(client.get(INDEX))


def test_it_refuses_an_inactive_member_even_with_a_session(client, tenant_a):
    MembershipFactory(user__username="gone", user__password=GOOD_PASSWORD, user__is_active=False)
    assert sign_in(client, "gone", GOOD_PASSWORD).status_code == 200
    client.force_login(User.objects.get(username="gone"))
    assert shut_out(client.get(INDEX))


def test_it_shuts_out_a_removed_member_at_once(client, admin_a, auditor_a):
    auditor = Client()
    auditor.force_login(auditor_a)
    assert auditor.get(MEMBERS).status_code == 200
    client.force_login(admin_a)
    gone = Membership.objects.get(user=auditor_a)
    assert client.post(membership_url(gone, "delete"), {"post": "yes"}).status_code == 302
    assert shut_out(auditor.get(MEMBERS))
    assert User.objects.filter(pk=auditor_a.pk).exists()  # the account stays, unusable


# --- inviting --------------------------------------------------------------------------


def test_it_lets_a_tenant_admin_invite_a_member_with_a_link_used_once(client, admin_a, tenant_a):
    client.force_login(admin_a)
    form = {"username": "newbie", "tenant": tenant_a.pk, "role": "auditor"}
    # Fields the form does not have are ignored, whatever they are called.
    response = client.post(ADD_MEMBER, {**form, "is_superuser": "on", "is_staff": "on"})
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert not (newbie.is_superuser or newbie.is_staff or newbie.has_usable_password())
    assert Membership.objects.get(user=newbie).role == "auditor"
    [link] = links_in(response)
    assert link in client.get(response.url).content.decode()  # the page after saving
    assert link not in client.get(response.url).content.decode()  # and never again

    guest = Client()
    form_page = guest.get(link)
    assert form_page.status_code == 302  # to the same page without the token
    weak = guest.post(form_page.url, {"new_password1": "12345678", "new_password2": "12345678"})
    assert weak.status_code == 200 and weak.context["form"].errors["new_password2"]
    passwords = {"new_password1": GOOD_PASSWORD, "new_password2": GOOD_PASSWORD}
    assert guest.post(form_page.url, passwords)["Location"] == INDEX
    assert guest.get(INDEX).status_code == 200  # signed in

    assert not Client().get(link, follow=True).context["validlink"]  # used up
    assert sign_in(Client(), "newbie", GOOD_PASSWORD)["Location"] == INDEX


@pytest.mark.parametrize(
    "path", ["not-base64/token/", "MTIzNDU2Nzg5/1-2-3/", "Mg/set-password/", "%00/%ff/"]
)
def test_it_answers_a_broken_link_with_a_page_not_an_error(client, admin_a, path):
    response = client.get("/admin/set-password/" + path)
    assert response.status_code == 200
    assert not response.context["validlink"]


@pytest.mark.parametrize("taken", ["charlie", "Charlie"])
def test_it_refuses_an_invite_naming_an_existing_account(client, admin_a, outsider, taken):
    client.force_login(admin_a)
    form = {"username": taken, "tenant": admin_a.memberships.get().tenant_id, "role": "admin"}
    response = client.post(ADD_MEMBER, form)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["username"]
    assert list(outsider.memberships.values_list("tenant__slug", flat=True)) == ["tenant-b"]


def test_it_refuses_an_invite_into_another_tenant(client, admin_a, tenant_b):
    client.force_login(admin_a)
    response = client.post(ADD_MEMBER, {"username": "mole", "tenant": tenant_b.pk, "role": "admin"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["tenant"]
    assert not User.objects.filter(username="mole").exists()


def test_it_lets_the_operator_add_an_existing_account(client, superuser, outsider, tenant_a):
    password = outsider.password
    client.force_login(superuser)
    form = {"username": "charlie", "tenant": tenant_a.pk, "role": "auditor"}
    response = client.post(ADD_MEMBER, form)
    assert response.status_code == 302
    assert not links_in(response)  # they keep their password
    assert outsider.memberships.filter(tenant=tenant_a, role="auditor").exists()
    outsider.refresh_from_db()
    assert outsider.password == password
    again = client.post(ADD_MEMBER, form)
    assert again.context["adminform"].form.errors["username"]


# --- resetting and removing ------------------------------------------------------------


def test_it_lets_a_tenant_admin_reset_a_members_password(client, admin_a, auditor_a):
    auditor = Client()
    auditor.force_login(auditor_a)
    client.force_login(admin_a)
    response = reset_passwords(client, Membership.objects.get(user=auditor_a))
    [link] = links_in(response)
    auditor_a.refresh_from_db()
    assert not auditor_a.has_usable_password()
    assert shut_out(auditor.get(MEMBERS))  # the old session ends with the old password
    assert Client().get(link).status_code == 302  # on to the set-password form


def test_it_never_resets_the_password_of_an_account_in_another_tenant(
    client, admin_a, auditor_a, tenant_b
):
    # Audrey is also in B, where Alice is no admin: her password would open B to Alice.
    MembershipFactory(user=auditor_a, tenant=tenant_b, role="admin")
    client.force_login(admin_a)
    response = reset_passwords(
        client, Membership.objects.get(user=auditor_a, tenant__slug="tenant-a")
    )
    assert not links_in(response)
    assert "was not reset" in " ".join(str(m) for m in get_messages(response.wsgi_request))
    auditor_a.refresh_from_db()
    assert auditor_a.check_password("pw")


def test_it_resets_an_account_in_several_tenants_all_run_by_the_admin(
    client, admin_a, auditor_a, tenant_b
):
    MembershipFactory(user=admin_a, tenant=tenant_b)
    MembershipFactory(user=auditor_a, tenant=tenant_b, role="auditor")
    client.force_login(admin_a)
    # Both memberships picked: one account, one link.
    assert len(links_in(reset_passwords(client, *auditor_a.memberships.all()))) == 1


@pytest.mark.parametrize("power", ["superuser", "permission", "group"])
def test_it_never_resets_an_account_with_rights_beyond_its_memberships(
    client, admin_a, auditor_a, power
):
    if power == "superuser":
        auditor_a.is_superuser = True
        auditor_a.save()
    elif power == "permission":
        auditor_a.user_permissions.add(Permission.objects.get(codename="view_user"))
    else:
        auditor_a.groups.add(Group.objects.create(name="helpdesk"))
    client.force_login(admin_a)
    assert not links_in(reset_passwords(client, Membership.objects.get(user=auditor_a)))
    auditor_a.refresh_from_db()
    assert auditor_a.check_password("pw")


def test_it_never_resets_the_admins_own_password(client, admin_a):
    client.force_login(admin_a)
    assert not links_in(reset_passwords(client, Membership.objects.get(user=admin_a)))
    admin_a.refresh_from_db()
    assert admin_a.check_password("pw")


def test_it_removes_a_member_of_two_tenants_from_one_only(client, admin_a, auditor_a, tenant_b):
    MembershipFactory(user=auditor_a, tenant=tenant_b, role="admin")
    client.force_login(admin_a)
    mine = Membership.objects.get(user=auditor_a, tenant__slug="tenant-a")
    assert client.post(membership_url(mine, "delete"), {"post": "yes"}).status_code == 302
    assert list(auditor_a.memberships.values_list("tenant__slug", "role")) == [
        ("tenant-b", "admin")
    ]
    auditor_a.refresh_from_db()
    assert auditor_a.is_active and auditor_a.check_password("pw")


def test_it_lets_a_tenant_admin_change_a_members_role_but_not_their_own(client, admin_a, auditor_a):
    client.force_login(admin_a)
    theirs = Membership.objects.get(user=auditor_a)
    assert client.post(membership_url(theirs), {"role": "admin"}).status_code == 302
    theirs.refresh_from_db()
    assert theirs.role == "admin"
    own = Membership.objects.get(user=admin_a)
    assert client.post(membership_url(own), {"role": "auditor"}).status_code == 403
    assert client.post(membership_url(own, "delete"), {"post": "yes"}).status_code == 403
    own.refresh_from_db()
    assert own.role == "admin"
