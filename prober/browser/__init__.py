"""Browser checks: pages rendered in Chromium through Playwright, judged by the same classifier.

Imported only when a check has a `browser:` key (prober.probe imports it lazily), so that prober
runs without Playwright installed.
"""

from __future__ import annotations

from prober.browser.chromium import Renderer, close_renderers, renderer_for
from prober.browser.render import probe_rendered

__all__ = ["Renderer", "close_renderers", "probe_rendered", "renderer_for"]
