"""The leaderboard page in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium; ``.ci/run`` installs them): it loads without a console
error, its table sorts, the interactive plot draws one point per encoder, a hover shows that
encoder, a click filters the table (issue 17). No mock browser."""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from support import toy_components as toy

    from privbench.pipeline import run

    root = tmp_path_factory.mktemp("page")
    spec = toy.toy_spec(
        encoders=[
            "identity",
            {"name": "gaussian-blur", "config": {"sigma_px": 4}},
            "pixelate",
            {"name": "low-res", "config": {"size_px": 16}},
        ]
    )
    report = run(spec, out_dir=root / "out", cache_dir=root / "cache", report=True)
    return root / "out" / "index.html", report.results


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script(
            "return document.querySelectorAll('#plot0 .scatterlayer .point').length > 0"
        )
    )


def test_the_page_loads_without_console_errors_and_plots_every_encoder(browser, page):
    path, rows = page
    _open(browser, path)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    encoders = rows["encoder_label"].nunique()
    points = browser.find_elements("css selector", "#plot0 .scatterlayer .point")
    assert len(points) == encoders == 4
    assert len(browser.find_elements("css selector", "#t0 tbody tr")) == encoders


def test_the_table_sorts_by_a_clicked_column(browser, page):
    path, _ = page
    _open(browser, path)
    headers = browser.find_elements("css selector", "#t0 thead th")
    utility = next(index for index, th in enumerate(headers) if th.text == "utility")

    def column():
        return [
            float(row.find_elements("css selector", "td")[utility].text)
            for row in browser.find_elements("css selector", "#t0 tbody tr")
        ]

    headers[utility].click()
    assert column() == sorted(column())
    headers[utility].click()
    assert column() == sorted(column(), reverse=True)


def test_hovering_a_point_names_its_encoder_and_clicking_filters_the_table(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    path, _ = page
    _open(browser, path)
    data = browser.execute_script(
        "var d = document.getElementById('plot0'); "
        "return d.data.map(function (t) { return t.text; });"
    )
    labels = [label for trace in data for label in trace]
    point = browser.find_elements("css selector", "#plot0 .scatterlayer .trace")[0]
    first = point.find_elements("css selector", ".point")[0]
    expected = data[0][0]
    ActionChains(browser).move_to_element(first).perform()
    hover = WebDriverWait(browser, 10).until(
        lambda d: d.find_elements("css selector", "#plot0 .hovertext")
    )
    assert expected in hover[0].text and expected in labels
    ActionChains(browser).click(first).perform()
    visible = [
        row.get_attribute("data-encoder")
        for row in browser.find_elements("css selector", "#t0 tbody tr")
        if row.is_displayed()
    ]
    assert visible == [expected]
    browser.find_element("css selector", "button.show-all").click()
    shown = [r for r in browser.find_elements("css selector", "#t0 tbody tr") if r.is_displayed()]
    assert len(shown) == 4
