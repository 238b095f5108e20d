"""The bot of each inbox: its provider and voice, what it knows, when people are at work, and
what it did (one ``BotRun`` per turn, with model, tokens, cost and latency)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from conversations.models import Conversation, Inbox, Message, mask_secret


class BotConfig(models.Model):
    """One per inbox, edited in the Django admin. Without a base URL the inbox uses the built-in
    offline bot (knowledge base by keyword and fuzzy match, a menu, rule-based handoffs)."""

    class BusinessKind(models.TextChoices):
        CLINIC = "clinic", _("Clinic or practice")
        SALON = "salon", _("Salon or beauty")
        SHOP = "shop", _("Shop")
        SERVICES = "services", _("Technical services")
        OTHER = "other", _("Other")

    class OutOfHours(models.TextChoices):
        # The bot answers as usual; a handoff waits in the queue and the customer is told when
        # people are back.
        ANSWER = "answer", _("The bot keeps answering; handoffs wait for opening time")
        # Only the out-of-hours message, once per conversation; nothing else until opening time.
        MESSAGE = "message", _("Only send the out-of-hours message")

    inbox = models.OneToOneField(Inbox, on_delete=models.CASCADE, related_name="bot", verbose_name=_("inbox"))
    enabled = models.BooleanField(
        _("bot enabled"), default=True, help_text=_("When off, every new conversation goes straight to the queue.")
    )
    name = models.CharField(_("bot name"), max_length=60, default="Assistente")
    business_kind = models.CharField(
        _("kind of business"), max_length=16, choices=BusinessKind.choices, default=BusinessKind.OTHER
    )

    # --- Provider (any OpenAI-compatible endpoint); empty base URL = the offline bot -----------
    base_url = models.URLField(
        _("provider base URL"),
        max_length=300,
        blank=True,
        help_text=_(
            "An OpenAI-compatible endpoint, e.g. https://api.openai.com/v1, https://api.groq.com/openai/v1, "
            "https://generativelanguage.googleapis.com/v1beta/openai/, http://localhost:11434/v1 (Ollama). "
            "Empty: the built-in offline bot."
        ),
    )
    model = models.CharField(_("model"), max_length=120, blank=True)
    # A secret: the admin never shows it back in full and nothing logs it.
    api_key = models.TextField(_("API key"), blank=True)
    temperature = models.DecimalField(_("temperature"), max_digits=3, decimal_places=2, default=Decimal("0.30"))
    max_tokens = models.PositiveIntegerField(_("most tokens per reply"), default=500)
    timeout = models.FloatField(_("timeout (seconds)"), default=20.0)
    transcription_model = models.CharField(
        _("transcription model"),
        max_length=120,
        blank=True,
        help_text=_("For voice notes, e.g. whisper-1 (OpenAI) or whisper-large-v3 (Groq). Empty: no transcription."),
    )

    # --- Voice and knowledge ------------------------------------------------------------------
    persona = models.TextField(
        _("persona"), blank=True, help_text=_("Who the bot is and how it talks, e.g. friendly, short answers.")
    )
    instructions = models.TextField(_("instructions"), blank=True)
    business_name = models.CharField(_("business name"), max_length=200, blank=True)
    business_address = models.TextField(_("address"), blank=True)
    services = models.TextField(_("services and prices"), blank=True)
    payment_methods = models.TextField(_("payment methods"), blank=True)
    greeting = models.TextField(_("greeting"), blank=True)
    handoff_topics = models.TextField(
        _("handoff topics"), blank=True, help_text=_("One a line: subjects the bot always hands to a person.")
    )
    handoff_keywords = models.TextField(
        _("handoff keywords"), blank=True, help_text=_("One a line: words that hand the conversation to a person.")
    )
    max_turns = models.PositiveSmallIntegerField(_("most bot replies before offering a person"), default=6)
    burst_seconds = models.FloatField(
        _("wait for more lines (seconds)"),
        default=2.0,
        help_text=_("A customer who types three lines in a row gets one reply."),
    )

    # --- Hours -------------------------------------------------------------------------------
    timezone = models.CharField(_("time zone"), max_length=64, default="America/Sao_Paulo")
    out_of_hours = models.CharField(
        _("out of hours"), max_length=16, choices=OutOfHours.choices, default=OutOfHours.ANSWER
    )
    out_of_hours_message = models.TextField(
        _("out-of-hours message"),
        blank=True,
        help_text=_("Empty: a standard message saying when people are back."),
    )
    csat = models.BooleanField(_("ask for a rating after closing"), default=True)

    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("bot")
        verbose_name_plural = _("bots")

    def __str__(self) -> str:
        return f"{self.name} ({self.inbox})"

    @property
    def uses_llm(self) -> bool:
        return bool(self.base_url and self.model)

    @property
    def masked_api_key(self) -> str:
        return mask_secret(self.api_key)


class ModelPrice(models.Model):
    """What a model costs, for the cost of each reply (US dollars per million tokens)."""

    model = models.CharField(_("model"), max_length=120, unique=True)
    input_per_million = models.DecimalField(_("input, per million tokens (US$)"), max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(_("output, per million tokens (US$)"), max_digits=10, decimal_places=4)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("model price")
        verbose_name_plural = _("model prices")
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal:
        million = Decimal(1_000_000)
        return (self.input_per_million * tokens_in + self.output_per_million * tokens_out) / million


class BusinessHours(models.Model):
    """An opening interval on a weekday, in the bot's time zone (several per day allowed)."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    bot = models.ForeignKey(BotConfig, on_delete=models.CASCADE, related_name="hours", verbose_name=_("bot"))
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens = models.TimeField(_("opens"))
    closes = models.TimeField(_("closes"))

    class Meta:
        verbose_name = _("business hours")
        verbose_name_plural = _("business hours")
        ordering = ["weekday", "opens"]
        constraints = [
            models.CheckConstraint(condition=Q(opens__lt=models.F("closes")), name="bots_hours_opens_before_closes"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{self.closes:%H:%M}"


class Holiday(models.Model):
    """A day closed all day. Without a bot: a Brazilian national holiday (preloaded for the
    coming years), closed for every inbox; with one: that business's own day off."""

    bot = models.ForeignKey(
        BotConfig, on_delete=models.CASCADE, null=True, blank=True, related_name="holidays", verbose_name=_("bot")
    )
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=120)

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["date"], condition=Q(bot__isnull=True), name="bots_holiday_national_uniq"),
            models.UniqueConstraint(fields=["bot", "date"], name="bots_holiday_bot_date_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.name}"


class KnowledgeEntry(models.Model):
    """What the bot may tell customers: an FAQ (question and answer) or an article."""

    class Kind(models.TextChoices):
        FAQ = "faq", _("Question and answer")
        ARTICLE = "article", _("Article")

    bot = models.ForeignKey(BotConfig, on_delete=models.CASCADE, related_name="knowledge", verbose_name=_("bot"))
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.FAQ)
    title = models.CharField(_("question or title"), max_length=300)
    body = models.TextField(_("answer or text"))
    keywords = models.CharField(
        _("keywords"), max_length=500, blank=True, help_text=_("Comma-separated words customers use for this.")
    )
    # Shown as a topic in the offline bot's menu.
    in_menu = models.BooleanField(_("show in the menu"), default=False)
    active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("knowledge entry")
        verbose_name_plural = _("knowledge base")
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["bot", "active"], name="bots_knowledge_bot_idx")]

    def __str__(self) -> str:
        return self.title


class Lead(models.Model):
    """What the bot collected for the business (``record_lead``): name, service, preferred day
    and time, how they found us. Copied into the handoff packet."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="lead", verbose_name=_("conversation")
    )
    data = models.JSONField(_("data"), default=dict, blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("lead")
        verbose_name_plural = _("leads")

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.data.get('name', '')}".strip()


class BotState(models.Model):
    """The reply pipeline's cursor on one conversation: every inbound message up to
    ``handled_through`` has had its reply or decision. A turn holds a short lease while the
    model thinks, so two workers never answer the same messages."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, primary_key=True, related_name="bot_state"
    )
    handled_through = models.BigIntegerField(default=0)
    # Bot replies since the conversation was opened or last returned to the bot.
    turns = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, default="")
    # The out-of-hours message was sent (MESSAGE mode sends it once).
    out_of_hours_notified = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("bot state")
        verbose_name_plural = _("bot states")

    def __str__(self) -> str:
        return f"#{self.conversation_id} through {self.handled_through}"


class BotRun(models.Model):
    """One turn of the bot: what it read, what it did and what it cost."""

    class Outcome(models.TextChoices):
        REPLIED = "replied", _("Replied")
        HANDOFF = "handoff", _("Handed to a person")
        # A person took the conversation while the bot was thinking: nothing was sent.
        DROPPED = "dropped", _("Dropped (a person took over)")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Nothing to answer")

    class Engine(models.TextChoices):
        LLM = "llm", _("Language model")
        OFFLINE = "offline", _("Offline bot")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="bot_runs", verbose_name=_("conversation")
    )
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices)
    engine = models.CharField(_("engine"), max_length=8, choices=Engine.choices)
    # The newest customer message this turn answered, and the reply it sent (if any).
    trigger = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("answering")
    )
    reply = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="bot_runs", verbose_name=_("reply")
    )
    model = models.CharField(_("model"), max_length=120, blank=True)
    tokens_in = models.PositiveIntegerField(_("tokens in"), default=0)
    tokens_out = models.PositiveIntegerField(_("tokens out"), default=0)
    cost = models.DecimalField(_("cost (US$)"), max_digits=12, decimal_places=6, default=Decimal(0))
    # Our whole turn, and the provider's share of it.
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), default=0)
    llm_ms = models.PositiveIntegerField(_("provider time (ms)"), default=0)
    knowledge = models.JSONField(_("knowledge used"), default=list, blank=True)
    tool_calls = models.JSONField(_("tool calls"), default=list, blank=True)
    error = models.TextField(_("error"), blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("bot turn")
        verbose_name_plural = _("bot turns")
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["conversation", "created"], name="bots_run_conv_idx")]

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.get_outcome_display()}"
