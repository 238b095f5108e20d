"""Logging in to the console in a real browser, with a TOTP second factor."""

from __future__ import annotations

import re

from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.browser.conftest import Server, log_in

VERIFY = re.compile(r"/accounts/2fa/verify/\?next=(/|%2F)console(/|%2F)$")


def test_it_logs_in_with_a_totp_code_and_lands_on_the_console(server: Server, new_page) -> None:
    # given: the supervisor has a confirmed TOTP device (its key read back from the server's database)
    key = server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from django_otp.plugins.otp_totp.models import TOTPDevice\n"
        "user = get_user_model().objects.get(username='supervisora')\n"
        "print(TOTPDevice.objects.create(user=user, name='Celular', confirmed=True).key)\n"
    ).split()[-1]
    page = new_page()

    # when: she logs in with her password
    log_in(page, "supervisora")

    # then: the second factor is asked for before the console
    expect(page).to_have_url(VERIFY)
    page.goto("/console/")
    expect(page).to_have_url(VERIFY)

    # when: she types the code her phone shows
    page.fill("input[name=code]", f"{TOTP(bytes.fromhex(key)).token():06d}")
    page.locator("form [type=submit]").first.click()

    # then: the console
    expect(page).to_have_url(f"{server.url}/console/")
    expect(page.locator("#console-counters")).to_be_visible()
