"""report.html in a real headless browser (Debian's chromium through selenium).

The page is opened from disk (file://, no server, network disabled); every picture must
decode, and clicking a parent cluster must reveal its child clusters. Screenshots are kept
as artifacts in $FGDISCOVER_ARTIFACTS (default tests/artifacts/, git-ignored):
report.png (top of the page) and report_parent.png (after clicking parent 1).
.ci/run installs chromium and chromium-driver and sets FGDISCOVER_REQUIRE_BROWSER=1, so in
CI a missing browser is a failure, not a skip.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("FGDISCOVER_ARTIFACTS", Path(__file__).parent / "artifacts"))

MISSING = "no chromium / chromedriver binary (apt-get install chromium chromium-driver; .ci/run does)"
REQUIRED = os.environ.get("FGDISCOVER_REQUIRE_BROWSER", "") not in ("", "0")


@pytest.fixture(autouse=True)
def _need_browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if REQUIRED:
            pytest.fail(MISSING + " and FGDISCOVER_REQUIRE_BROWSER is set")
        pytest.skip(MISSING)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium-manager would otherwise try to download one
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def broken_images(driver):
    return driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")


def test_report_opens_renders_and_navigates(browser, tiny_cluster_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report = tiny_cluster_run / "report.html"
    browser.get(report.as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report.png"))  # before any check: kept on failure
    print(f"screenshots: {ARTIFACTS}")
    assert "fgdiscover report" in browser.title
    n_images = browser.execute_script("return document.images.length")
    assert n_images == 12  # map, 2 parent strips, 4 child galleries, 5 model pictures
    assert broken_images(browser) == []
    assert browser.find_element(By.CSS_SELECTOR, ".map img").size["width"] > 300

    clusters = json.loads((tiny_cluster_run / "clusters.json").read_text())["clusters"]
    children = sorted(c["cluster"] for c in clusters if c["parent_cluster"] == 1)
    section = browser.find_element(By.ID, "parent-1")
    assert not section.is_displayed()  # children are hidden until their parent is chosen
    browser.find_element(By.ID, "card-1").click()
    try:
        WebDriverWait(browser, 10).until(lambda d: section.is_displayed())
    finally:
        browser.save_screenshot(str(ARTIFACTS / "report_parent.png"))
    assert browser.current_url.endswith("#parent-1")
    assert not browser.find_element(By.ID, "parent-0").is_displayed()
    shown = [f for f in section.find_elements(By.CSS_SELECTOR, "figure.child") if f.is_displayed()]
    assert sorted(int(f.get_attribute("id").split("-")[1]) for f in shown) == children
    for figure in shown:
        img = figure.find_element(By.TAG_NAME, "img")
        assert browser.execute_script("return arguments[0].naturalWidth", img) > 0
        assert img.size["width"] > 50

    # a child's own address keeps its parent open; "all parents" goes back
    browser.get(f"{report.as_uri()}#child-{children[0]}")
    assert browser.find_element(By.ID, "parent-1").is_displayed()
    back = browser.find_element(By.CSS_SELECTOR, "#parent-1 a[href='#clusters']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", back)
    back.click()
    WebDriverWait(browser, 10).until(
        lambda d: not d.find_element(By.ID, "parent-1").is_displayed())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
