"""Long-running processes load what they will use, then take it out of the garbage collector's
reach.

CPython's collector walks every container object of a generation when it collects it, and it
collects the oldest generation each time a quarter as many objects again have survived into it.
A server process loads most of what it holds lazily (the URLconf and its views at the first
request, each template at its first render), so all of that sat in the oldest generation and was
walked at every full collection: in the console's daphne process, pauses of 20 to 150 ms every
10 to 20 s under load, which every websocket fragment in flight waited for
(docs/benchmarks.md, "Console websockets"). ``settle()`` imports the URLconf's modules and
compiles the project's templates up front, collects once and freezes what survived
(``gc.freeze``: the collector skips it from then on), so later collections only walk what the
process created since. Frozen objects are never freed; only what is loaded for the process's
whole life is there when it runs.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from django.conf import settings
from django.template import TemplateDoesNotExist, TemplateSyntaxError, engines
from django.urls import get_resolver

logger = logging.getLogger(__name__)

# The young generations as CPython has them (700 allocations, every 10th young collection);
# the full collection after 1,000 middle ones (CPython: 10), still only when a quarter as many
# objects again have survived since the last one: about every 15 minutes under the console's
# load instead of every 10 s.
THRESHOLDS = (700, 10, 1000)


def _project_templates() -> list[tuple[object, str]]:
    """The project's own templates (its apps' and the project directory's, not the installed
    packages'), each with the engine that finds it."""
    base = Path(settings.BASE_DIR)
    found = []
    for engine in engines.all():
        loaders = getattr(getattr(engine, "engine", None), "template_loaders", ())
        directories = {Path(d) for loader in loaders if hasattr(loader, "get_dirs") for d in loader.get_dirs()}
        for directory in sorted(directories):
            if not directory.is_relative_to(base) or ".venv" in directory.parts or not directory.is_dir():
                continue
            found += [(engine, str(path.relative_to(directory))) for path in directory.rglob("*.html")]
    return sorted(set(found), key=lambda pair: pair[1])


_settled = False


def settle() -> None:
    """Load the URLconf and the templates, then freeze everything loaded so far (once per
    process; a forked child inherits its parent's frozen objects)."""
    global _settled
    if _settled:
        return
    _settled = True
    get_resolver().url_patterns  # noqa: B018  (imports every view module)
    loaded = 0
    for engine, name in _project_templates():
        try:
            engine.get_template(name)
            loaded += 1
        except (TemplateDoesNotExist, TemplateSyntaxError):
            # Not a page's template (a fragment of another's, say): it is compiled when used.
            logger.debug("settle: %s not loaded", name, exc_info=True)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    logger.debug("settled: %s templates loaded, %s objects frozen", loaded, gc.get_freeze_count())
