"""End-to-end tests in a real browser: JupyterLab driven by headless Chromium through Playwright.

A package (not a bare directory) so the Playwright fixture can be package-scoped: the sync API
leaves its event loop marked as running in this thread, which would break ``asyncio.run`` in the
tests collected after these, so it must be stopped when this package is done.
"""
