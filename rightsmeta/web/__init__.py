"""Web resources: one decision per URL from its headers, its site's policies, its page and its bytes.

    >>> from rightsmeta import web
    >>> report = web.check("https://example.com/a.jpg", headers={"X-Robots-Tag": "noai"},
    ...                    site=web.Site(robots=b""))          # everything given: no network
    >>> report.status()
    'notAllowed'

``check`` fetches whatever is not given (needs aiohttp: ``pip install 'rightsmeta[web]'``);
``evaluate`` and ``from_headers`` never touch the network.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .core import DEFAULT_AGENT, Site, WebReport, evaluate, from_headers
from .headers import Headers

if TYPE_CHECKING:
    from .fetch import Limits

__all__ = ["DEFAULT_AGENT", "Site", "WebReport", "acheck", "check", "evaluate", "from_headers"]


def check(
    url: str,
    *,
    headers: Headers | None = None,
    body: bytes | None = None,
    page: bytes | str | None = None,
    site: Site | None = None,
    user_agent: str = DEFAULT_AGENT,
    fetch_body: bool = False,
    limits: Limits | None = None,
) -> WebReport:
    """The web decision for ``url``. No network when ``headers`` and ``site`` are given (and
    ``body``, if ``fetch_body``); otherwise what is missing is fetched, within ``limits``.

    Safe to call from many threads (each call runs its own event loop), and where an event loop
    is running (a notebook: the call then waits in a thread of its own); async code that should
    not wait uses ``acheck``.
    """
    if headers is not None and site is not None and (body is not None or not fetch_body):
        return evaluate(url, headers=headers, body=body, page=page, site=site, user_agent=user_agent)

    def run() -> WebReport:
        return asyncio.run(acheck(url, headers=headers, body=body, page=page, site=site, user_agent=user_agent,
                                  fetch_body=fetch_body, limits=limits))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called where an event loop runs (a notebook's cells do): asyncio.run cannot start another
    # one in this thread, so the check's own loop runs in a thread of its own.
    with ThreadPoolExecutor(1, thread_name_prefix="rightsmeta-web-check") as pool:
        return pool.submit(run).result()


async def acheck(
    url: str,
    *,
    headers: Headers | None = None,
    body: bytes | None = None,
    page: bytes | str | None = None,
    site: Site | None = None,
    user_agent: str = DEFAULT_AGENT,
    fetch_body: bool = False,
    limits: Limits | None = None,
) -> WebReport:
    """``check`` for async callers (one fetcher per call; for many URLs use ``fetch.Fetcher``)."""
    from .fetch import Fetcher, Limits

    async with Fetcher(user_agent=user_agent, limits=limits or Limits()) as fetcher:
        return await fetcher.check(url, headers=headers, body=body, page=page, site=site, fetch_body=fetch_body)
