"""API tokens end with the password that made them possible.

A password change logs every other browser session out (Django's session auth hash); a token
is a session that never expires, so it goes too, whoever changed the password (the console's
page, the admin, ``manage.py changepassword``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)


@receiver(pre_save, sender=get_user_model(), dispatch_uid="console.api.tokens.revoke_on_password_change")
def revoke_on_password_change(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        deleted, _ = Token.objects.filter(user_id=instance.pk).delete()
        if deleted:
            logger.info("user %s changed password: API token revoked", instance.pk)
