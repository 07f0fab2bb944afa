"""The page at the two screens it is made for, with screenshots to look at."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

# Everything a person must see and reach without scrolling.
ESSENTIAL = ["#connection", "#temperature", "#humidity", "#light", "#brightness-value", "#dimmer",
             "#brightness-slider", "#brighter", "#brightness-input", "#brightness-set", "label.switch",
             "#display-status", "#uptime", "#load", "#memory", "#diagnostics", "#system-status",
             '#services li[data-service="display"]', '#services li[data-service="sensors"]',
             '#services li[data-service="system"]']

HIDDEN_PARTS = """selectors => selectors.flatMap(sel => {
    const el = document.querySelector(sel);
    if (!el) return [sel + ': missing'];
    const box = el.getBoundingClientRect();
    const card = el.closest('.card') || document.body;
    const edge = card.getBoundingClientRect();
    const problems = [];
    if (box.width === 0 || box.height === 0) problems.push(sel + ': not displayed');
    if (box.left < 0 || box.top < 0 || box.right > innerWidth + 0.5 || box.bottom > innerHeight + 0.5)
        problems.push(sel + ': outside the screen');
    if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)
        problems.push(sel + ': text cut off');
    if (box.left < edge.left - 0.5 || box.right > edge.right + 0.5 || box.top < edge.top - 0.5
        || box.bottom > edge.bottom + 0.5)
        problems.push(sel + ': cut off by its card');
    return problems;
})"""


@pytest.mark.parametrize("width, height", [(800, 480), (1920, 1080)])
def test_the_page_fits_the_screen(page, kiosk, wait_live, artifacts, width, height):
    page.set_viewport_size({"width": width, "height": height})
    wait_live(page)
    # Fill every part with real content first: a diagnostics result and a
    # minute of readings in the chart.
    page.click("#diagnostics")
    expect(page.locator("#system-status")).to_have_attribute("data-state", re.compile("^(ok|warn)$"))
    page.fill("#brightness-input", "70")
    page.click("#brightness-set")
    expect(page.locator("#display-status")).to_have_text("Brightness set to 70%")
    page.wait_for_function("document.getElementById('sparkline-line').getAttribute('points').split(' ').length >= 10",
                           timeout=30_000)

    assert page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]") \
        == [width, height], "the page scrolls"
    assert page.evaluate(HIDDEN_PARTS, ESSENTIAL) == []
    # Readable: no text smaller than 10 CSS pixels on the small screen, and
    # larger type on the large one.
    smallest = page.evaluate("""() => Math.min(...[...document.querySelectorAll('body *')]
        .filter(el => el.childNodes.length && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
        .filter(el => el.getClientRects().length)
        .map(el => parseFloat(getComputedStyle(el).fontSize)))""")
    assert smallest >= (10 if width == 800 else 14), smallest
    # Touch targets at least 30 CSS pixels on the Pi's screen.
    for selector in ("#dimmer", "#brighter", "#brightness-set", "#diagnostics"):
        box = page.locator(selector).bounding_box()
        assert box["height"] >= 30 and box["width"] >= 30, (selector, box)

    page.screenshot(path=str(artifacts / f"kiosk-{width}x{height}.png"), animations="disabled")


def test_an_error_state_screenshot(page, kiosk, wait_live, artifacts):
    page.set_viewport_size({"width": 800, "height": 480})
    wait_live(page)
    page.fill("#brightness-input", "150")
    page.click("#brightness-set")
    expect(page.locator("#display-status")).to_have_attribute("data-state", "error")
    expect(page.locator("#display-status")).to_have_text(
        "brightness must be from 0 to 100, got 150 (bad_request)")
    assert page.evaluate(HIDDEN_PARTS, ["#display-status"]) == []
    page.screenshot(path=str(artifacts / "kiosk-error-800x480.png"), animations="disabled")
