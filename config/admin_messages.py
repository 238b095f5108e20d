"""Django admin messages whose pt-BR wording we override, and third-party names we translate.

Django's pt-BR catalogue writes its generic admin messages for masculine nouns ("O {name}
“{obj}” foi alterado com sucesso."), which reads "O conversa ... foi alterado" for our
feminine models (conversa, mensagem, caixa de entrada). Our catalogue (LOCALE_PATHS) takes
precedence over Django's, so it carries gender-neutral wording for these msgids: the noun is
moved out of agreement ("Registro adicionado com sucesso: conversa “#5”."). django-axes and
django-celery-beat ship no pt-BR catalogue; their model names are translated here too.

Nothing imports this module: it exists so that `makemessages` finds these msgids in our
sources and keeps their translations (it drops entries it cannot find). Each msgid is
Django's or the app's exactly, curly quotes included. The proposed pt-BR translation is in
the comment above each one.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop, ngettext_lazy, pgettext_lazy

ADMIN_MESSAGES = (
    # --- After saving or deleting (django/contrib/admin/options.py) ---
    # pt-BR: "Registro adicionado com sucesso: {name} “{obj}”."
    gettext_noop("The {name} “{obj}” was added successfully."),
    # pt-BR: "Registro adicionado com sucesso: {name} “{obj}”. Você pode adicionar outro registro de {name} abaixo."
    gettext_noop("The {name} “{obj}” was added successfully. You may add another {name} below."),
    # pt-BR: "Alterações salvas com sucesso: {name} “{obj}”. Você pode editar novamente abaixo."
    gettext_noop("The {name} “{obj}” was changed successfully. You may edit it again below."),
    # pt-BR: "Alterações salvas com sucesso: {name} “{obj}”. Você pode adicionar outro registro de {name} abaixo."
    gettext_noop("The {name} “{obj}” was changed successfully. You may add another {name} below."),
    # pt-BR: "Alterações salvas com sucesso: {name} “{obj}”."
    gettext_noop("The {name} “{obj}” was changed successfully."),
    # pt-BR: "Registro removido com sucesso: %(name)s “%(obj)s”."
    gettext_noop("The %(name)s “%(obj)s” was deleted successfully."),
    # pt-BR: "Não existe registro de %(name)s com ID “%(key)s”. Talvez tenha sido removido?"
    gettext_noop("%(name)s with ID “%(key)s” doesn’t exist. Perhaps it was deleted?"),
    # pt-BR: msgstr[0] "%(count)s registro de %(name)s alterado com sucesso."
    #        msgstr[1] "%(count)s registros de %(name)s alterados com sucesso."
    ngettext_lazy("%(count)s %(name)s was changed successfully.", "%(count)s %(name)s were changed successfully.", 2),
    # pt-BR: "Remoção concluída com sucesso: %(count)d %(items)s."
    gettext_noop("Successfully deleted %(count)d %(items)s."),
    # pt-BR: "Remover registros selecionados de %(verbose_name_plural)s"
    gettext_noop("Delete selected %(verbose_name_plural)s"),
    # pt-BR: "Adicionar registro de %(verbose_name)s"
    gettext_noop("Add another %(verbose_name)s"),
    # --- History (django/contrib/admin/models.py) ---
    # pt-BR: "Inclusão de {name} “{object}”."
    gettext_noop("Added {name} “{object}”."),
    # pt-BR: "Alteração de {fields} em {name} “{object}”."
    gettext_noop("Changed {fields} for {name} “{object}”."),
    # pt-BR: "Remoção de {name} “{object}”."
    gettext_noop("Deleted {name} “{object}”."),
    # --- Delete confirmation pages (admin/delete_confirmation.html, delete_selected_confirmation.html) ---
    # pt-BR: "Remover %(class_name)s %(instance)s exigiria remover os seguintes objetos protegidos
    #         relacionados: %(related_objects)s"
    gettext_noop(
        "Deleting %(class_name)s %(instance)s would require deleting the following protected related objects: "
        "%(related_objects)s"
    ),
    # pt-BR: "Remover %(object_name)s '%(escaped_object)s' exigiria remover os seguintes objetos protegidos
    #         relacionados:"
    gettext_noop(
        "Deleting the %(object_name)s '%(escaped_object)s' would require deleting the following protected "
        "related objects:"
    ),
    # pt-BR: "Remover os registros selecionados de %(objects_name)s resultaria na remoção de objetos
    #         relacionados, mas sua conta não tem permissão para remover os seguintes tipos de objetos:"
    gettext_noop(
        "Deleting the selected %(objects_name)s would result in deleting related objects, but your account "
        "doesn't have permission to delete the following types of objects:"
    ),
    # pt-BR: "Remover os registros selecionados de %(objects_name)s exigiria remover os seguintes objetos
    #         relacionados protegidos:"
    gettext_noop(
        "Deleting the selected %(objects_name)s would require deleting the following protected related objects:"
    ),
    # pt-BR: "Tem certeza de que deseja remover os registros selecionados de %(objects_name)s? Todos os
    #         seguintes objetos e seus itens relacionados serão removidos:"
    gettext_noop(
        "Are you sure you want to delete the selected %(objects_name)s? All of the following objects and their "
        "related items will be deleted:"
    ),
    # --- Related-object widget titles (admin/widgets/related_widget_wrapper.html) ---
    # pt-BR: "Alterar o registro selecionado de %(model)s"
    gettext_noop("Change selected %(model)s"),
    # pt-BR: "Adicionar registro de %(model)s"
    gettext_noop("Add another %(model)s"),
    # pt-BR: "Remover o registro selecionado de %(model)s"
    gettext_noop("Delete selected %(model)s"),
    # pt-BR: "Ver o registro selecionado de %(model)s"
    gettext_noop("View selected %(model)s"),
)

THIRD_PARTY_NAMES = (
    # django-axes models
    gettext_noop("access attempt"),  # pt-BR: "tentativa de acesso"
    gettext_noop("access attempts"),  # pt-BR: "tentativas de acesso"
    gettext_noop("access failure"),  # pt-BR: "falha de acesso"
    gettext_noop("access failures"),  # pt-BR: "falhas de acesso"
    gettext_noop("access attempt expiration"),  # pt-BR: "expiração de tentativa de acesso"
    gettext_noop("access attempt expirations"),  # pt-BR: "expirações de tentativas de acesso"
    gettext_noop("access log"),  # pt-BR: "registro de acesso"
    gettext_noop("access logs"),  # pt-BR: "registros de acesso"
    # django-celery-beat models
    gettext_noop("periodic task"),  # pt-BR: "tarefa periódica"
    gettext_noop("periodic tasks"),  # pt-BR: "tarefas periódicas"
    gettext_noop("interval"),  # pt-BR: "intervalo"
    gettext_noop("intervals"),  # pt-BR: "intervalos"
    gettext_noop("crontab"),  # pt-BR: "agendamento crontab"
    gettext_noop("crontabs"),  # pt-BR: "agendamentos crontab"
    gettext_noop("clocked"),  # pt-BR: "horário fixo" (the app uses this one msgid for both numbers)
    gettext_noop("solar event"),  # pt-BR: "evento solar"
    gettext_noop("solar events"),  # pt-BR: "eventos solares"
    gettext_noop("periodic task track"),  # pt-BR: "controle de tarefas periódicas"
    gettext_noop("periodic task tracks"),  # pt-BR: "controles de tarefas periódicas"
)

DJANGO_FIXES = (
    # Django's pt-BR entry starts with a space (" %(truncated_text)s…"), so every cut text in
    # the admin (message previews, event notes) starts with one.
    # pt-BR: "%(truncated_text)s…"
    pgettext_lazy("String to return when truncating text", "%(truncated_text)s…"),
)
