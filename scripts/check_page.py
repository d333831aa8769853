#!/usr/bin/env python3
"""The Cost Allocation page in a real browser (issue 13), run by scripts/check_page.sh from .ci/run.

Starts `kubecur serve` on a sample written by `kubecur sample`, drives Debian's headless Chromium with
Playwright (launched with executable_path; Playwright's own browsers are never downloaded) and checks:

- the table's numbers equal the API's `/allocation` answer for several windows, aggregates and metrics
  (every row: name, cost, share, resources, line items, in the API's order), and the summary line;
- the daily chart's numbers add up to the table's total;
- drill-down namespace -> deployment -> pod, each level equal to the API's filtered answer;
- the URL state round-trips: a URL sets the pickers, the pickers set the URL, Back restores the view;
- the CSV download equals the table on screen;
- a bad `?window=` and an unreachable API show a message, never a blank page;
- no console errors and no uncaught exceptions on the normal views;
- 1280x800 and a 390-px phone width: no horizontal scrolling of the page itself;
- `kubecur serve --api URL` against a local stand-in of the deployed API, which checks every request's
  SigV4 headers (form, scope `…/REGION/execute-api/aws4_request`, `x-amz-date`, `x-amz-security-token`)
  and recomputes the signature with botocore from the known secret; and the bearer-token mode.

Prints the counts of what it checked; any mismatch raises and exits non-zero.

  scripts/check_page.py --kubecur PATH [--chromium /usr/bin/chromium] [--screenshots docs/page]
"""

import argparse
import csv
import datetime
import hashlib
import http.server
import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

UNALLOCATED = "__unallocated__"
COUNTS = {}


def count(what, n=1):
    COUNTS[what] = COUNTS.get(what, 0) + n


def fail(message):
    raise AssertionError(message)


def check(condition, message):
    if not condition:
        fail(message)


# ---------------------------------------------------------------- the CLI's number formats


def money(value):
    """cli/src/output.rs `money`."""
    cents = math.floor(abs(value) * 100 + 0.5)
    units, fraction = divmod(cents, 100)
    sign = "-" if value < 0 and cents > 0 else ""
    return f"{sign}{units:,}.{fraction:02d}"


def share(value, total):
    return f"{value / total * 100:.1f} %" if abs(total) > sys.float_info.epsilon else "-"


# ---------------------------------------------------------------- servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, process, log):
    for _ in range(900):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if process.poll() is not None:
            sys.stderr.write(open(log).read())
            fail(f"the server exited ({process.returncode}) before answering {url}")
        time.sleep(0.2)
    fail(f"{url} did not answer")


def get_json(base, path, query=None):
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


class Server:
    def __init__(self, args, log, env=None):
        self.log = log
        self.process = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ---------------------------------------------------------------- the stand-in of the deployed API

SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def expected_signature(method, url, headers, signed, secret, key, token, region, amz_date):
    """The signature botocore computes for the same request, headers and time."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, headers={h: headers[h] for h in signed})
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(key, secret, token), "execute-api", region)
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


def stand_in(upstream, mode, key=None, secret=None, token=None, region=None, bearer=None):
    """An HTTP server that checks each request's authentication as API Gateway would, then answers
    with the real API's answer (from `upstream`). `seen` records every check."""
    seen = {"verified": 0, "refused": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def refuse(self, reason):
            seen["refused"].append(f"{self.path}: {reason}")
            body = json.dumps({"message": f"stand-in refused: {reason}"}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            headers = {k.lower(): v for k, v in self.headers.items()}
            if mode == "sigv4":
                match = SIGV4.match(headers.get("authorization", ""))
                if not match:
                    return self.refuse(f"Authorization is not SigV4: {headers.get('authorization')!r}")
                amz_date = headers.get("x-amz-date", "")
                if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
                    return self.refuse(f"x-amz-date {amz_date!r}")
                if match["date"] != amz_date[:8]:
                    return self.refuse("the scope's date is not x-amz-date's")
                when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
                if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
                    return self.refuse("x-amz-date is more than 5 minutes off")
                if (match["key"], match["region"], match["service"]) != (key, region, "execute-api"):
                    return self.refuse(f"scope {match['key']}/{match['region']}/{match['service']}")
                signed = match["signed"].split(";")
                if "host" not in signed or "x-amz-date" not in signed:
                    return self.refuse(f"SignedHeaders {signed}")
                if token is not None and (headers.get("x-amz-security-token") != token or "x-amz-security-token" not in signed):
                    return self.refuse("x-amz-security-token missing or not signed")
                url = f"http://{headers['host']}{self.path}"
                want = expected_signature("GET", url, headers, signed, secret, key, token, region, amz_date)
                if want != match["signature"]:
                    return self.refuse(f"signature {match['signature']} != botocore's {want}")
            else:
                if headers.get("authorization") != f"Bearer {bearer}":
                    return self.refuse(f"Authorization {headers.get('authorization')!r}")
            seen["verified"] += 1
            try:
                with urllib.request.urlopen(upstream + self.path, timeout=30) as response:
                    status, body, ctype = response.status, response.read(), response.headers["Content-Type"]
            except urllib.error.HTTPError as err:
                status, body, ctype = err.code, err.read(), err.headers["Content-Type"]
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


# ---------------------------------------------------------------- the page


class Page:
    def __init__(self, browser, base, width=1280, height=800, expect_errors=False):
        self.context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        self.page = self.context.new_page()
        self.base = base
        self.errors = []
        self.expect_errors = expect_errors
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, query=""):
        self.page.goto(self.base + "/" + query)
        return self.settle()

    def settle(self):
        # Polled from here: the page's Content-Security-Policy forbids the eval wait_for_function uses.
        for _ in range(300):
            if self.page.evaluate("() => document.body.dataset.state") in ("loaded", "error"):
                break
            time.sleep(0.1)
        else:
            fail(f"{self.page.url}: the view did not finish loading in 30 s")
        # A view ends with the state set; wait until no request is in flight either.
        self.page.wait_for_load_state("networkidle")
        return self

    def click(self, locator):
        self.page.evaluate("document.body.dataset.state = 'busy'")
        locator.click()
        return self.settle()

    def select(self, id, value):
        self.page.evaluate("document.body.dataset.state = 'busy'")
        self.page.select_option(f"#{id}", value)
        return self.settle()

    def query(self):
        return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.page.url).query))

    def table(self):
        return self.page.evaluate(
            """() => [...document.querySelectorAll('#groups tbody tr')].map(tr => ({
                name: tr.dataset.name,
                keys: [...tr.children].filter(c => !c.dataset.column).map(c => c.firstChild ? c.firstChild.textContent : ''),
                cost: tr.querySelector('[data-column=cost]').textContent,
                share: tr.querySelector('[data-column=share]').textContent,
                resources: tr.querySelector('[data-column=resources]').textContent,
                lineItems: tr.querySelector('[data-column=lineItems]').textContent,
                unallocated: tr.classList.contains('unallocated'),
            }))"""
        )

    def close(self):
        if self.errors and not self.expect_errors:
            fail("console errors: " + "; ".join(self.errors))
        count("pages without console errors" if not self.expect_errors else "pages with expected errors")
        self.context.close()


def sort_rows(rows):
    return sorted(rows, key=lambda r: (-r["totalCost"], [r["properties"][k] for k in r["properties"]]))


def table_equals_api(page, base, query, what):
    """The table on screen equals GET /allocation for the page's own query."""
    answer = get_json(base, "/allocation", query)
    rows = sort_rows(list(answer["data"][0].values()))
    total = answer["meta"]["summary"]["total"]
    shown = page.table()
    check(len(shown) == len(rows), f"{what}: {len(shown)} rows shown, the API has {len(rows)}")
    for got, want in zip(shown, rows):
        expected = {
            "name": want["name"],
            "cost": money(want["totalCost"]),
            "share": share(want["totalCost"], total),
            "resources": str(want["resources"]),
            "lineItems": str(want["lineItems"]),
        }
        for field, value in expected.items():
            check(got[field] == value, f"{what}: row {want['name']}: {field} shown {got[field]!r}, the API's is {value!r}")
        check(got["unallocated"] == (UNALLOCATED in want["properties"].values()), f"{what}: {want['name']} unallocated mark")
        check(got["keys"] == list(want["properties"].values()), f"{what}: keys {got['keys']} vs {want['properties']}")
        count("table rows equal to the API")
    summary = answer["meta"]["summary"]
    text = page.page.text_content("#summary")
    for part in [f"total {money(summary['total'])}", f"({summary['lineItems']} line items)", f"unallocated {money(summary['unallocated'])}"]:
        check(part in text, f"{what}: the summary {text!r} lacks {part!r}")
    count("views equal to the API")
    return answer


def chart_adds_up(page, answer, what):
    totals = page.page.eval_on_selector_all("#chart-data tbody td[data-column=total]", "cells => cells.map(c => c.textContent)")
    if not answer["data"][0]:
        return
    check(totals, f"{what}: no chart numbers")
    cents = sum(int(t.replace(",", "").replace(".", "")) for t in totals)
    want = round(answer["meta"]["summary"]["total"] * 100)
    # Each day is rounded to cents on screen: allow a cent per day.
    check(abs(cents - want) <= len(totals), f"{what}: the chart's days add up to {cents / 100}, the total is {want / 100}")
    count("charts adding up to the total")


def no_horizontal_scroll(page, what):
    width = page.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    check(width[0] <= width[1], f"{what}: the page is {width[0]} px wide in a {width[1]} px viewport")
    count("viewports without horizontal scrolling")


def run(args):
    work = tempfile.mkdtemp(prefix="kubecur-page-")
    servers = []
    try:
        subprocess.run([args.kubecur, "sample", "--out", f"{work}/cur", "--rows", str(args.rows), "--only", "legacy-parquet"],
                       check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # With a label computed, as the pipeline with KUBECUR_LABELS=team: the picker offers it.
        serve = [args.kubecur, "serve", "--cur", f"{work}/cur/legacy-parquet", "--listen", f"127.0.0.1:{port}", "--labels", "team"]
        if args.page_dir:
            serve += ["--page-dir", args.page_dir]
        local = Server(serve, f"{work}/serve.log")
        servers.append(local)
        wait_for(base + "/status", local.process, local.log)
        periods = sorted(p["period"] for p in get_json(base, "/status")["data"] if p["serving"])
        check(periods, "the sample has no billing period")
        newest = periods[-1]
        y, m = map(int, newest.split("-"))
        month_window = f"{newest}-01T00:00:00Z,{y + m // 12}-{m % 12 + 1:02d}-01T00:00:00Z"
        first = periods[0]
        whole = f"{first}-01T00:00:00Z,{y + m // 12}-{m % 12 + 1:02d}-01T00:00:00Z"
        week = f"{first}-10T00:00:00Z,{first}-17T00:00:00Z"

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
            print(f"browser: {browser.version} at {args.chromium}")

            # 1. The first view: no query; the newest billing period with data, by namespace.
            page = Page(browser, base).open()
            q = page.query()
            check(q == {"window": month_window, "aggregate": "namespace", "costMetric": "amortizedNetCost"}, f"first view's URL {q}")
            answer = table_equals_api(page, base, q, "first view")
            chart_adds_up(page, answer, "first view")
            check(page.page.is_visible("#unallocated-help"), "the unallocated explanation is not shown")
            check("activate the tag" in page.page.text_content("#unallocated-help"), "the fix for __unallocated__ is not named")
            check(page.page.locator("#status-table tbody tr").count() == len(periods), "status rows")
            for period in periods:
                check("fresh" in page.page.text_content(f"#status-table tr[data-period='{period}']"), f"{period} is not fresh")
            count("status rows shown", len(periods))
            no_horizontal_scroll(page, "1280x800")
            if args.screenshots:
                page.page.screenshot(path=f"{args.screenshots}/namespace-1280.png", full_page=True)

            # 2. Several windows, aggregates and metrics, each loaded from its URL: pickers show it.
            views = [
                (whole, "namespace", "amortizedNetCost"),
                (whole, "deployment", "listCost"),
                (week, "service", "netCost"),
                (week, "account", "amortizedCost"),
                (month_window, "cluster", "listCost"),
                (month_window, "daemonset", "amortizedNetCost"),
                (week, "container", "netCost"),
                (week, "pod", "amortizedCost"),
                (month_window, "namespace,deployment", "amortizedNetCost"),
            ]
            for window, aggregate, metric in views:
                query = {"window": window, "aggregate": aggregate, "costMetric": metric}
                page.open("?" + urllib.parse.urlencode(query))
                check(page.query() == query, f"{query}: the URL became {page.query()}")
                check(page.page.input_value("#window") == "custom", f"{query}: window picker")
                check(page.page.input_value("#aggregate") == aggregate, f"{query}: aggregate picker")
                check(page.page.input_value("#costMetric") == metric, f"{query}: metric picker")
                check(page.page.input_value("#from") == window[:10], f"{query}: first day {page.page.input_value('#from')}")
                answer = table_equals_api(page, base, query, f"{aggregate}/{metric}")
                if "," not in aggregate:
                    chart_adds_up(page, answer, f"{aggregate}/{metric}")
                count("URLs that set the pickers")

            # 3. The pickers set the URL, Back restores the view.
            page.open("?" + urllib.parse.urlencode({"window": whole, "aggregate": "namespace", "costMetric": "amortizedNetCost"}))
            page.select("costMetric", "listCost")
            check(page.query()["costMetric"] == "listCost", "the metric picker did not set the URL")
            table_equals_api(page, base, page.query(), "metric picked")
            page.select("aggregate", "service")
            check(page.query()["aggregate"] == "service", "the aggregate picker did not set the URL")
            table_equals_api(page, base, page.query(), "aggregate picked")
            page.page.evaluate("document.body.dataset.state = 'busy'")
            page.page.go_back()
            page.settle()
            check(page.query()["aggregate"] == "namespace" and page.page.input_value("#aggregate") == "namespace", "Back did not restore the aggregate")
            table_equals_api(page, base, page.query(), "after Back")
            # The computed label is a choice of the aggregate picker (from /status) and its view is the API's.
            options = page.page.eval_on_selector_all("#aggregate option", "os => os.map(o => o.value)")
            check("label:team" in options, f"the aggregate picker lacks label:team: {options}")
            page.select("aggregate", "label:team")
            check(page.query()["aggregate"] == "label:team", "the label choice did not set the URL")
            answer = table_equals_api(page, base, page.query(), "label:team picked")
            check(len(answer["data"][0]) > 1, "the sample's team tag splits the cost")
            count("label views from the picker")
            page.select("window", "lastmonth")
            check(page.query()["window"] == "lastmonth", "the window picker did not set the URL")
            table_equals_api(page, base, page.query(), "last month")
            page.select("window", "7d")
            check(page.query()["window"] == "7d", "7d")
            table_equals_api(page, base, page.query(), "last 7 days")
            page.page.select_option("#window", "custom")
            page.page.fill("#from", week[:10])
            page.page.fill("#to", f"{first}-16")
            page.page.evaluate("document.body.dataset.state = 'busy'")
            page.page.keyboard.press("Enter")
            page.settle()
            check(page.query()["window"] == week, f"the custom window set {page.query()['window']}, not {week}")
            table_equals_api(page, base, page.query(), "custom window by keyboard")
            count("picker changes reflected in the URL", 5)

            # 4. Sorting by a column, then the CSV of what is on screen.
            page.page.click("#groups thead button[data-sort=resources]")  # sorted here, no request
            shown = page.table()
            resources = [int(r["resources"]) for r in shown]
            check(resources == sorted(resources, reverse=True), f"sorted by resources: {resources}")
            check(page.page.get_attribute("#groups th:has(button[data-sort=resources])", "aria-sort") == "descending", "aria-sort")
            with page.page.expect_download() as download:
                page.page.click("#csv")
            text = open(download.value.path(), encoding="utf-8").read()
            lines = list(csv.reader(io.StringIO(text)))
            metric = page.query()["costMetric"]
            check(lines[0] == [page.query()["aggregate"], metric, "sharePercent", "resources", "lineItems"], f"CSV header {lines[0]}")
            check(len(lines) - 1 == len(shown), f"CSV has {len(lines) - 1} rows, the table {len(shown)}")
            for cells, row in zip(lines[1:], shown):
                check(cells[0] == row["keys"][0], f"CSV key {cells[0]} vs {row['keys'][0]}")
                check(money(float(cells[1])) == row["cost"], f"CSV cost {cells[1]} vs {row['cost']}")
                check((cells[2] + " %" if cells[2] else "-") == row["share"], f"CSV share {cells[2]} vs {row['share']}")
                check(cells[3:] == [row["resources"], row["lineItems"]], f"CSV {cells} vs {row}")
                count("CSV rows equal to the table")
            page.close()

            # 5. Drill-down: namespace -> deployment -> pod, by keyboard-reachable links.
            page = Page(browser, base).open("?" + urllib.parse.urlencode({"window": whole, "aggregate": "namespace", "costMetric": "amortizedNetCost"}))
            link = page.page.locator("#groups tbody a.drill").first
            namespace = link.text_content()
            page.click(link)
            q = page.query()
            check(q.get("aggregate") == "deployment" and q.get("filterNamespaces") == namespace, f"drill to deployments: {q}")
            table_equals_api(page, base, q, f"deployments of {namespace}")
            check(namespace in page.page.text_content("#crumbs"), "the breadcrumb does not name the namespace")
            link = page.page.locator("#groups tbody a.drill").first
            deployment = link.text_content()
            link.focus()
            page.page.evaluate("document.body.dataset.state = 'busy'")
            page.page.keyboard.press("Enter")
            page.settle()
            q = page.query()
            check(q.get("aggregate") == "pod" and q.get("filterDeployments") == deployment and q.get("filterNamespaces") == namespace, f"drill to pods: {q}")
            table_equals_api(page, base, q, f"pods of {namespace}/{deployment}")
            count("drill-down levels equal to the API", 2)
            if args.screenshots:
                page.page.screenshot(path=f"{args.screenshots}/drilldown-pods-1280.png", full_page=False)
            page.click(page.page.locator("#crumbs a").first)
            check(page.query().get("aggregate") == "namespace" and "filterNamespaces" not in page.query(), f"breadcrumb up: {page.query()}")
            page.close()

            # 6. A phone's width.
            page = Page(browser, base, width=390, height=844).open("?" + urllib.parse.urlencode({"window": whole, "aggregate": "namespace", "costMetric": "amortizedNetCost"}))
            table_equals_api(page, base, page.query(), "phone width")
            no_horizontal_scroll(page, "390 px")
            if args.screenshots:
                page.page.screenshot(path=f"{args.screenshots}/namespace-390.png", full_page=True)
            page.close()

            # 7. Bad input shows a message, never a blank page (the browser logs the 400 itself).
            page = Page(browser, base, expect_errors=True).open("?window=yesteryear")
            message = page.page.text_content("#message")
            check(page.page.is_visible("#message") and "window" in message and "yesteryear" in message, f"bad window message: {message!r}")
            check(page.page.input_value("#window") == "custom", "a bad window shows as custom")
            count("bad inputs explained on the page")
            page.open("?window=month&costMetric=price")
            message = page.page.text_content("#message")
            check("costMetric" in message, f"bad metric message: {message!r}")
            count("bad inputs explained on the page")
            if args.screenshots:
                page.page.screenshot(path=f"{args.screenshots}/bad-window-1280.png")
            page.close()

            # 8. kubecur serve --api URL: the proxy signs for execute-api; the stand-in verifies.
            key, secret, token, region = "AKIDPAGETEST", "page-test-secret", "page-session-token", "eu-west-1"
            sigv4, seen = stand_in(base, "sigv4", key=key, secret=secret, token=token, region=region)
            proxy_port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "KUBECUR_API_TOKEN"}
            env.update({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token,
                        "AWS_REGION": region, "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
            proxy = Server([args.kubecur, "serve", "--api", f"http://127.0.0.1:{sigv4.server_address[1]}",
                            "--listen", f"127.0.0.1:{proxy_port}"], f"{work}/proxy.log", env=env)
            servers.append(proxy)
            proxy_base = f"http://127.0.0.1:{proxy_port}"
            wait_for(proxy_base + "/", proxy.process, proxy.log)
            page = Page(browser, proxy_base).open()
            check(not seen["refused"], f"the stand-in refused: {seen['refused']}")
            table_equals_api(page, base, page.query(), "through the SigV4 proxy")
            page.open("?" + urllib.parse.urlencode({"window": whole, "aggregate": "service", "costMetric": "listCost"}))
            table_equals_api(page, base, page.query(), "through the SigV4 proxy, by service")
            check(not seen["refused"], f"the stand-in refused: {seen['refused']}")
            check(seen["verified"] >= 6, f"only {seen['verified']} signed requests reached the stand-in")
            # DNS rebinding: a request naming another host is refused before anything is signed.
            before = seen["verified"]
            rebound = urllib.request.Request(proxy_base + "/status", headers={"Host": f"attacker.example:{proxy_port}"})
            try:
                urllib.request.urlopen(rebound, timeout=10)
                fail("the proxy answered a request for another host name")
            except urllib.error.HTTPError as err:
                check(err.code == 403, f"another host name: {err.code}")
            check(seen["verified"] == before, "a request for another host name reached the API")
            count("requests for another host name refused")
            count("SigV4 signatures verified (form and botocore's signature)", seen["verified"])
            page.close()
            proxy.stop()

            bearer, seen_bearer = stand_in(base, "bearer", bearer="a.jwt.token")
            proxy_port = free_port()
            env_bearer = dict(env, KUBECUR_API_TOKEN="a.jwt.token")
            proxy = Server([args.kubecur, "serve", "--api", f"http://127.0.0.1:{bearer.server_address[1]}",
                            "--listen", f"127.0.0.1:{proxy_port}"], f"{work}/proxy-bearer.log", env=env_bearer)
            servers.append(proxy)
            proxy_base = f"http://127.0.0.1:{proxy_port}"
            wait_for(proxy_base + "/", proxy.process, proxy.log)
            page = Page(browser, proxy_base).open()
            table_equals_api(page, base, page.query(), "through the bearer-token proxy")
            check(not seen_bearer["refused"] and seen_bearer["verified"] >= 3, f"bearer: {seen_bearer}")
            count("bearer-token requests verified", seen_bearer["verified"])
            page.close()
            proxy.stop()

            # 9. The API gone: the page says so.
            stopped = free_port()
            proxy = Server([args.kubecur, "serve", "--api", f"http://127.0.0.1:{stopped}", "--listen", f"127.0.0.1:{proxy_port}"],
                           f"{work}/proxy-down.log", env=env)
            servers.append(proxy)
            wait_for(proxy_base + "/", proxy.process, proxy.log)
            page = Page(browser, proxy_base, expect_errors=True).open("?window=month")
            message = page.page.text_content("#message")
            check(page.page.is_visible("#message") and "did not answer" in message, f"unreachable API message: {message!r}")
            count("bad inputs explained on the page")
            page.close()
            browser.close()
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    for what, n in COUNTS.items():
        print(f"  {n:6d} {what}")
    print(f"ok: the Cost Allocation page: {COUNTS.get('views equal to the API', 0)} views and "
          f"{COUNTS.get('table rows equal to the API', 0)} table rows equal to the API, "
          f"{COUNTS.get('SigV4 signatures verified (form and botocore' + chr(39) + 's signature)', 0)} SigV4 requests verified, 0 console errors")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kubecur", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--screenshots", help="write the main views' screenshots into this directory")
    parser.add_argument("--page-dir", help="serve the page's files from this directory (kubecur serve --page-dir)")
    args = parser.parse_args()
    try:
        run(args)
    except AssertionError as err:
        print(f"FAIL: {err}", file=sys.stderr)
        for what, n in COUNTS.items():
            print(f"  {n:6d} {what} (before the failure)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
