from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from conversations import access
        from conversations.models import Membership

        # A role remembered for the request must not outlive a change made in the same request.
        def forget(sender: type, instance: Membership, **kwargs: object) -> None:
            access.forget_roles(instance.user_id)

        post_save.connect(forget, sender=Membership, weak=False, dispatch_uid="access-forget-roles-save")
        post_delete.connect(forget, sender=Membership, weak=False, dispatch_uid="access-forget-roles-delete")
