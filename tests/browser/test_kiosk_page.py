"""The kiosk page in headless Chromium against the real demo stack."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from kiosk_demo import launch


def shown_reading(page) -> tuple[int, float]:
    """The sequence number and temperature on screen, read together."""
    text, temperature = page.evaluate("""() => [document.getElementById('sensor-updated').textContent,
                                                 document.getElementById('temperature').textContent]""")
    return int(re.search(r"#(\d+)", text).group(1)), float(temperature)


def test_live_readings_arrive_and_change(page, kiosk, wait_live, artifacts):
    wait_live(page)
    expect(page.locator("#connection")).to_have_text("Live")
    seq, temperature = shown_reading(page)
    # New readings replace the old ones without a reload...
    page.wait_for_function("""seq => !document.getElementById('sensor-updated').textContent
                                       .includes('#' + seq + ' ')""", arg=seq)
    page.wait_for_function("t => document.getElementById('temperature').textContent !== t",
                           arg=f"{temperature:.1f}", timeout=60_000)
    # ...and what is shown is what the sensors worker measured.
    seq, temperature = shown_reading(page)
    with kiosk.caller("sensors") as sensors:
        readings = {r["seq"]: r for r in sensors.send_request("get_history")["readings"]}
    assert abs(readings[seq]["temperature_c"] - temperature) <= 0.051
    # The chart was filled from the worker's history, not only from live readings.
    assert len(page.locator("#sparkline-line").get_attribute("points").split()) > 1


def test_controls_change_the_display_worker(page, kiosk, wait_live, artifacts):
    wait_live(page)
    status = page.locator("#display-status")
    display = kiosk.caller("display")

    page.fill("#brightness-input", "35")
    page.click("#brightness-set")
    expect(status).to_have_attribute("data-state", "ok")
    expect(status).to_have_text("Brightness set to 35%")
    assert display.send_request("get_state")["brightness"] == 35

    page.click("#brighter")
    expect(page.locator("#brightness-value")).to_have_text("45")
    assert display.send_request("get_state")["brightness"] == 45

    page.locator("#brightness-slider").fill("20")
    expect(status).to_have_text("Brightness set to 20%")
    assert display.send_request("get_state")["brightness"] == 20

    page.click("label.switch")
    expect(status).to_have_text("Automatic brightness on")
    assert display.send_request("get_state")["auto"] is True
    page.click("label.switch")
    expect(status).to_have_text("Automatic brightness off")
    assert display.send_request("get_state")["auto"] is False

    # A change made elsewhere on the bus shows up through the broadcast.
    display.send_request("set_brightness", {"brightness": 64})
    expect(page.locator("#brightness-value")).to_have_text("64")
    expect(page.locator("#brightness-slider")).to_have_value("64")
    display.close()


def test_an_error_from_the_worker_is_shown(page, kiosk, wait_live, artifacts):
    wait_live(page)
    with kiosk.caller("display") as display:
        before = display.send_request("get_state")
        page.fill("#brightness-input", "150")
        page.press("#brightness-input", "Enter")
        status = page.locator("#display-status")
        expect(status).to_have_attribute("data-state", "error")
        expect(status).to_have_text("brightness must be from 0 to 100, got 150 (bad_request)")
        assert display.send_request("get_state") == before
    expect(status).to_have_css("color", "rgb(255, 93, 82)")  # the error colour, not the muted one


def test_diagnostics_show_progress_then_the_result(page, kiosk, wait_live, artifacts):
    wait_live(page)
    page.evaluate("""() => {
        const bar = document.getElementById('diagnostics-progress');
        window.seenProgress = [];
        new MutationObserver(() => window.seenProgress.push(Number(bar.getAttribute('aria-valuenow'))))
            .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
    }""")
    page.click("#diagnostics")
    expect(page.locator("#diagnostics")).to_be_disabled()
    status = page.locator("#system-status")
    # Memory, disk and load depend on the machine running the tests (a busy
    # one fails the load check): those may be reported as failed.
    expect(status).to_have_text(re.compile(r"^(All 6 checks passed in [\d.]+ s"
                                           r"|[3-5] of 6 checks passed\. (Memory|Disk space|System load): .*)$"))
    expect(status).to_have_attribute("data-state", re.compile("^(ok|warn)$"))
    expect(page.locator("#diagnostics")).to_be_enabled()
    seen = page.evaluate("window.seenProgress")
    assert any(0 < value < 100 for value in seen), seen  # the steps, as they happened
    assert seen[-1] == 100
    checks = page.locator("#checks li")
    expect(checks).to_have_count(6)
    for index, name in enumerate(["Redis round trip", "Sensors worker", "Display worker"]):
        expect(checks.nth(index)).to_contain_text(name)
        expect(checks.nth(index)).to_have_attribute("data-state", "ok")


def test_a_stopped_worker_is_shown_as_gone(page, kiosk, wait_live, artifacts):
    wait_live(page)
    system = page.locator('#services li[data-service="system"]')
    expect(system).to_have_attribute("data-state", "running")
    assert kiosk.stop("system") == 0
    expect(system).to_have_attribute("data-state", "gone")
    expect(system.locator(".state")).to_have_text(re.compile("^stopped "))
    expect(page.locator("#services-count")).to_have_text("2 running, 1 stopped")
    # Its controls now say why they fail.
    page.click("#diagnostics")
    expect(page.locator("#system-status")).to_have_text(
        "The system worker is not running. (service_unavailable)")

    kiosk.stop("sensors")
    expect(page.locator("#sensors-card")).to_have_attribute("data-stale", "true")
    expect(page.locator("#sensor-updated")).to_have_text(re.compile("^No reading for .*sensors worker running"))

    kiosk.start("system", "sensors")
    expect(system).to_have_attribute("data-state", "running")
    expect(page.locator("#sensors-card")).to_have_attribute("data-stale", "false")


def test_offline_while_the_gateway_is_down(page, kiosk, wait_live, artifacts):
    wait_live(page)
    kiosk.stop("gateway")
    expect(page.locator("body")).to_have_attribute("data-connection", "offline")
    expect(page.locator("#banner")).to_be_visible()
    expect(page.locator("#banner-title")).to_have_text("The gateway is unreachable.")
    expect(page.locator("#connection")).to_have_text("Offline")
    expect(page.locator("#services-count")).to_have_text("unknown")
    page.set_viewport_size({"width": 800, "height": 480})
    page.screenshot(path=str(artifacts / "kiosk-offline-800x480.png"), animations="disabled")
    # A control pressed meanwhile says so instead of hanging.
    page.click("#brighter")
    expect(page.locator("#display-status")).to_have_text("The gateway is unreachable. (offline)")

    kiosk.start("gateway")
    wait_live(page)
    expect(page.locator("#banner")).to_be_hidden()
    seq, _ = shown_reading(page)
    page.wait_for_function("""seq => !document.getElementById('sensor-updated').textContent
                                       .includes('#' + seq + ' ')""", arg=seq)


def test_offline_while_redis_is_down(page, kiosk, wait_live, artifacts):
    wait_live(page)
    kiosk.redis.stop()
    expect(page.locator("body")).to_have_attribute("data-connection", "offline")
    expect(page.locator("#banner-title")).to_have_text("Redis is unreachable.")
    page.click("#brighter")
    expect(page.locator("#display-status")).to_have_attribute("data-state", "error")
    expect(page.locator("#display-status")).to_have_text(re.compile(r"\((connection_lost|service_unavailable)\)$"))

    kiosk.redis.start()
    # The gateway says Redis is back; the workers reconnect by themselves.
    expect(page.locator("body")).to_have_attribute("data-connection", "live", timeout=60_000)
    wait_live(page)
    page.fill("#brightness-input", "25")
    page.click("#brightness-set")
    expect(page.locator("#display-status")).to_have_text("Brightness set to 25%", timeout=30_000)


def test_a_gateway_that_exposes_nothing_says_so(browser_context, kiosk):
    # The device before the demo is enabled: the page is served, the
    # channels and actions are not exposed.
    gateway, url = kiosk.extra_gateway("bare-gateway", f'static_dir = "{launch.STATIC_DIR}"')
    page = browser_context.new_page()
    try:
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-connection", "offline")
        expect(page.locator("#banner-title")).to_have_text("Live updates refused.")
        expect(page.locator("#banner-text")).to_contain_text("sensors.readings")
        page.click("#brighter")
        expect(page.locator("#display-status")).to_have_text(re.compile(r"\(not_exposed\)$"))
    finally:
        page.close()
        gateway.close()
