"""The playground page (/playground/) in headless Chromium against the in-process gateway: it
lists the models, classifies a text and a conversation, shows an error, and the browser
reports nothing blocked (the page is served with Content-Security-Policy: default-src 'self')."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import aiohttp
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
TEXT = "Thank you so much, this is wonderful!"
CONVERSATION = "ann: I got the job!\nbob: No way, congratulations!\nann: I start on Monday."
WAIT_S = 60  # two shared cores: Chromium and the model share them

pytestmark = [
    pytest.mark.grpc,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason=f"the playground test needs Debian's chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER})",
    ),
]


def severe(entries: list[dict]) -> list[str]:
    return [e["message"] for e in entries if e["level"] == "SEVERE"]


def full_page_png(driver, path: Path) -> None:
    """The whole page, not just the viewport (Chromium's DevTools protocol; laid out without a
    scrollbar, so as wide as the window)."""
    width, height = driver.execute_script(
        "const e = document.documentElement; return [Math.max(e.scrollWidth, innerWidth), e.scrollHeight];"
    )
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))


def drive(base: str) -> dict:
    """The browser part (blocking: runs in a thread while the gateway serves on the loop)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    seen: dict = {}
    try:
        wait = WebDriverWait(driver, WAIT_S)
        text = lambda css: driver.find_element(By.CSS_SELECTOR, css).text  # noqa: E731

        driver.get(base + "/playground/")
        wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("data-loaded") == "true")
        model = Select(driver.find_element(By.ID, "model"))
        seen["model_options"] = [o.get_attribute("value") for o in model.options]
        model.select_by_value("goemotions")

        # One text: every label of the model as a bar, the predicted set, the token count.
        box = driver.find_element(By.ID, "text")
        box.send_keys(TEXT)
        box.send_keys(Keys.CONTROL, Keys.ENTER)  # the shortcut, as the button would
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#bars .bar")) > 0)
        seen["bars"] = len(driver.find_elements(By.CSS_SELECTOR, "#bars .bar"))
        seen["ticks"] = len(driver.find_elements(By.CSS_SELECTOR, "#bars .tick"))
        seen["predicted"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#predicted .chip")]
        seen["highlighted"] = [
            e.get_attribute("data-label")
            for e in driver.find_elements(By.CSS_SELECTOR, "#bars .bar.predicted")
        ]
        seen["tokens"] = text("#tokens")
        seen["score_type"] = text("#score-type")
        seen["model_used"] = text("#model-used")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        full_page_png(driver, ARTIFACTS / "playground.png")
        seen["console_text"] = severe(driver.get_log("browser"))

        # A conversation: earlier lines become context turns.
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=conversation]").click()
        model.select_by_value("conversation")
        box.clear()
        box.send_keys(CONVERSATION)
        previous = driver.find_element(By.ID, "bars").get_attribute("innerHTML")
        driver.find_element(By.ID, "classify").click()
        wait.until(lambda d: d.find_element(By.ID, "bars").get_attribute("innerHTML") != previous)
        seen["context_turns"] = text("#context-turns")
        seen["conversation_bars"] = len(driver.find_elements(By.CSS_SELECTOR, "#bars .bar"))
        seen["conversation_model"] = text("#model-used")
        seen["conversation_top"] = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")[0].text
        full_page_png(driver, ARTIFACTS / "playground-conversation.png")
        seen["console_conversation"] = severe(driver.get_log("browser"))

        # An error: an empty text is INVALID_ARGUMENT, shown with its status and message.
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=text]").click()
        box.clear()
        driver.find_element(By.ID, "classify").click()
        wait.until(ec.visibility_of_element_located((By.ID, "error")))
        seen["error"] = text("#error")
        seen["output_hidden"] = not driver.find_element(By.ID, "output").is_displayed()
        seen["console_error"] = severe(driver.get_log("browser"))

        # Phone width: the layout fits without sideways scrolling.
        driver.set_window_size(390, 844)
        seen["overflow_px"] = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        full_page_png(driver, ARTIFACTS / "playground-phone.png")
    finally:
        driver.quit()
    return seen


async def test_playground_classifies_in_the_browser(gateway, backend):
    backend.reset()
    _, server = gateway
    base = f"http://127.0.0.1:{server.http_port}"
    async with aiohttp.ClientSession(base) as http:
        async with http.get("/playground/") as page:
            assert page.status == 200 and page.headers["Content-Security-Policy"] == "default-src 'self'"
        async with http.get("/v1/models") as response:
            models = {m["name"]: m for m in (await response.json())["models"]}
        body = {"text": TEXT, "model": "goemotions", "options": {"returnAllScores": True}}
        async with http.post("/v1/classify", data=json.dumps(body)) as response:
            direct = await response.json()
    expected_top = direct["scores"][0]["label"]  # highest first

    seen = await asyncio.to_thread(drive, base)

    assert {"goemotions", "conversation", "default"} <= set(seen["model_options"])
    assert seen["bars"] == len(models["goemotions"]["labels"]) == 28
    assert seen["ticks"] == 28  # multi-label: every label has its tuned threshold
    assert seen["predicted"] and seen["predicted"][0] == expected_top == direct["predicted"][0]
    assert seen["predicted"] == direct["predicted"] and set(seen["highlighted"]) == set(direct["predicted"])
    assert seen["tokens"] == str(direct["tokenCount"]) and int(seen["tokens"]) > 2
    assert seen["score_type"].startswith("multi-label") and seen["model_used"].startswith("goemotions v")
    assert seen["console_text"] == [], seen["console_text"]

    assert seen["context_turns"] == "2"
    assert seen["conversation_bars"] == len(models["conversation"]["labels"])
    assert seen["conversation_model"].startswith("conversation v") and "(top)" in seen["conversation_top"]
    assert seen["console_conversation"] == [], seen["console_conversation"]

    assert "400 INVALID_ARGUMENT" in seen["error"] and "text" in seen["error"], seen["error"]
    assert seen["output_hidden"]
    # The one SEVERE entry allowed: Chromium's own line for the refused request (a 400).
    assert all("/v1/classify" in m and "400" in m for m in seen["console_error"]), seen["console_error"]
    assert seen["overflow_px"] <= 0
