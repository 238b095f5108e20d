"""The ``whatsapp`` filter: customer text is escaped first, then WhatsApp's markers and links
become our own tags. Hostile text stays text."""

from __future__ import annotations

import time

import pytest
from django.template import Context, Template

from console.templatetags.console_tags import format_whatsapp

LINK_ATTRS = 'rel="noopener noreferrer nofollow" target="_blank"'


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("*negrito*", "<strong>negrito</strong>"),
        ("_itálico_", "<em>itálico</em>"),
        ("~riscado~", "<del>riscado</del>"),
        ("```mono *não* formata```", "<code>mono *não* formata</code>"),
        ("Olá *Maria*, tudo _bem_?", "Olá <strong>Maria</strong>, tudo <em>bem</em>?"),
        ("*_negrito itálico_*", "<strong><em>negrito itálico</em></strong>"),
        ("_*itálico negrito*_", "<em><strong>itálico negrito</strong></em>"),
        ("~*_tudo_*~", "<del><strong><em>tudo</em></strong></del>"),
    ],
)
def test_it_applies_whatsapp_formatting(text: str, html: str) -> None:
    assert format_whatsapp(text) == html


@pytest.mark.parametrize(
    "text",
    [
        "nome_do_arquivo_final.pdf",
        "snake_case_name",
        "2*3*4 = 24",
        "* not bold *",
        "_ not italic _",
        "um * só",
        "a~b~c",
        "**",
        "__",
    ],
)
def test_it_leaves_markers_inside_words_and_unpaired_markers_alone(text: str) -> None:
    assert format_whatsapp(text) == text.replace("&", "&amp;")


def test_it_shows_an_html_tag_as_text() -> None:
    html = format_whatsapp("<img src=x onerror=alert(1)>")
    assert html == "&lt;img src=x onerror=alert(1)&gt;"


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("*<script>alert(1)</script>*", "<strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>"),
        ("```<b>x</b>```", "<code>&lt;b&gt;x&lt;/b&gt;</code>"),
        ("_\"quoted\" & 'single'_", "<em>&quot;quoted&quot; &amp; &#x27;single&#x27;</em>"),
        ('<a href="javascript:alert(1)">x</a>', "&lt;a href=&quot;javascript:alert(1)&quot;&gt;x&lt;/a&gt;"),
    ],
)
def test_it_escapes_before_formatting(text: str, html: str) -> None:
    assert format_whatsapp(text) == html


def test_it_keeps_tags_well_nested_when_markers_cross() -> None:
    # *a _b* c_: bold wins (it opens first); the underscore inside it has no partner there
    html = format_whatsapp("*a _b* c_")
    assert html == "<strong>a _b</strong> c_"


def test_it_links_http_urls_after_escaping() -> None:
    html = format_whatsapp("Veja https://example.com/a_b_c?x=1&y=2.")
    assert html == (
        f'Veja <a href="https://example.com/a_b_c?x=1&amp;y=2" {LINK_ATTRS}>https://example.com/a_b_c?x=1&amp;y=2</a>.'
    )


def test_it_keeps_underscores_and_stars_of_a_url_and_formats_around_it() -> None:
    html = format_whatsapp("*veja http://x.com/_a_*")
    assert html == f'<strong>veja <a href="http://x.com/_a_" {LINK_ATTRS}>http://x.com/_a_</a></strong>'


@pytest.mark.parametrize(
    "text",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        'https://x.com/"onmouseover=alert(1)',
        "http://x.com/<script>",
    ],
)
def test_it_never_links_other_schemes_nor_lets_a_quote_out_of_the_href(text: str) -> None:
    html = format_whatsapp(text)
    assert "<script" not in html
    assert 'href="javascript' not in html and 'href="data' not in html
    assert '"onmouseover' not in html and '"o' not in html.split(">", 1)[0]


def test_it_keeps_balanced_parentheses_in_a_link() -> None:
    html = format_whatsapp("(ver https://pt.wikipedia.org/wiki/Bauru_(SP))")
    assert 'href="https://pt.wikipedia.org/wiki/Bauru_(SP)"' in html
    assert html.endswith("</a>)")


def test_it_ignores_forged_link_placeholders() -> None:
    html = format_whatsapp("\ue0000\ue001 https://a.com")
    assert html.startswith("\ufffd0\ufffd ")
    assert html.count("<a ") == 1


def test_it_formats_hostile_long_texts_quickly() -> None:
    # given: texts that make naive regexes backtrack
    texts = ["*a" * 2000, "_" * 4096, "*" + "a " * 2000, "*_~" * 1365, "_~*" * 1365, "*a _b " * 700, "https://" * 500]
    # when
    started = time.monotonic()
    for text in texts:
        format_whatsapp(text)
    # then
    assert time.monotonic() - started < 2.0


def test_it_is_a_template_filter_whose_output_escapes_customer_text() -> None:
    rendered = Template("{% load console_tags %}{{ text|whatsapp }}").render(Context({"text": "*<b>oi</b>*"}))
    assert rendered == "<strong>&lt;b&gt;oi&lt;/b&gt;</strong>"
