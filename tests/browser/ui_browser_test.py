#!/usr/bin/python3
"""The coordinator's live status page in a real browser (headless Chromium driven by Selenium).

Starts a repository, the deploy coordinator and a fake fleet (1 master, 4 agents) on loopback
ports, then chromedriver; every process is started here and stopped by its pid. Checks:
  - the page (with its Content-Security-Policy) follows a rollout pushed over
    GET /v1/events/stream, and the stream itself delivers a change within a second;
  - a click on Halt stops new node actions, and the page shows who holds and why; a reason
    holding markup is shown as text;
  - clearing the hold as admin from the page lets the rollout finish;
  - the stream resumes from Last-Event-ID.
Screenshots go to the output folder. Exits 77 (skipped) when Chromium, chromedriver or
python3-selenium is missing.

usage: ui_browser_test.py COORDINATOR_BIN FAKE_FLEET_BIN OUTPUT_DIR
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SKIP = 77

ADMIN, HALT, NODE = "admin-secret-ui", "halt-secret-ui", "node-secret-ui"


def log(*args):
    print("ui-browser:", *args, flush=True)


class Procs:
    """Processes this test started, stopped by pid (their own process groups)."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log_path):
        out = open(log_path, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append((name, p, out))
        return p

    def stop_all(self):
        for name, p, out in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
            out.close()


def wait_for(probe, timeout, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def read_port(path, proc, log_path, timeout=60):
    def probe():
        if proc.poll() is not None:
            raise AssertionError("process exited early; log:\n" + open(log_path).read()[-3000:])
        try:
            text = open(path).read().strip()
            return int(text) if text else None
        except FileNotFoundError:
            return None
    return wait_for(probe, timeout, what=str(path))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Loopback only: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url):
    try:
        with OPENER.open(url, timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def call(url, method="GET", body=None, token=ADMIN):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with OPENER.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def release(version, upgrade_from):
    def ref(pid):
        return {"id": pid, "sha256": hashlib.sha256(pid.encode()).hexdigest(), "size": 100}
    packages = [ref("mesos--" + version), ref("mesos-config--" + version)]
    return {"version": version, "upgrade_from": upgrade_from,
            "roles": {"master": {"packages": packages}, "agent": {"packages": packages}}}


class StreamReader(threading.Thread):
    """A raw client of GET /v1/events/stream: records each message with its arrival time."""

    def __init__(self, url, token, last_event_id=None):
        super().__init__(daemon=True)
        self.messages = []
        self.lock = threading.Lock()
        req = urllib.request.Request(url + "/v1/events/stream")
        req.add_header("Authorization", "Bearer " + token)
        if last_event_id is not None:
            req.add_header("Last-Event-ID", str(last_event_id))
        self.response = OPENER.open(req, timeout=60)

    def run(self):
        event = {"event": "message", "data": [], "id": None}
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line == "":
                    if event["data"]:
                        with self.lock:
                            self.messages.append((time.monotonic(), event["event"], event["id"],
                                                  json.loads("\n".join(event["data"]))))
                    event = {"event": "message", "data": [], "id": None}
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(": ")
                    if field == "data":
                        event["data"].append(value)
                    elif field in ("event", "id"):
                        event[field] = value
        except Exception:
            pass

    def find(self, predicate):
        with self.lock:
            for m in self.messages:
                if predicate(m):
                    return m
        return None

    def close(self):
        try:
            self.response.close()
        except Exception:
            pass


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    coordinator_bin, fleet_bin, out_dir = sys.argv[1:4]
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.common.exceptions import StaleElementReferenceException
    except ImportError:
        missing.append("python3-selenium")
    if missing:
        print("SKIPPED: the browser test needs " + ", ".join(missing) +
              " (Debian: chromium chromium-driver python3-selenium; tools/setup-deps installs them)")
        return SKIP

    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="hoist-ui-")
    procs = Procs()
    driver = None
    raw = None
    try:
        for name, text in (("admin.token", ADMIN), ("halt.token", HALT), ("node.token", NODE)):
            with open(os.path.join(work, name), "w") as f:
                f.write(text + "\n")
        os.makedirs(os.path.join(work, "repo", "releases"))
        for version, upgrade_from in (("1.0.0", []), ("2.0.0", ["1.*"])):
            with open(os.path.join(work, "repo", "releases", version + ".json"), "w") as f:
                json.dump(release(version, upgrade_from), f)

        repo = procs.start("repo", [fleet_bin, "--masters", "0", "--agents", "0", "--repo-dir",
                                    os.path.join(work, "repo"), "--port-file",
                                    os.path.join(work, "repo.port")],
                           os.path.join(out_dir, "repo.log"))
        repo_port = read_port(os.path.join(work, "repo.port"), repo, os.path.join(out_dir, "repo.log"))
        coord_log = os.path.join(out_dir, "coordinator.log")
        coord = procs.start("coordinator", [
            coordinator_bin, "--state", os.path.join(work, "state.db"), "--listen", "127.0.0.1:0",
            "--port-file", os.path.join(work, "coord.port"),
            "--repo", "http://127.0.0.1:%d/repo" % repo_port, "--allow-unsigned",
            "--admin-token-file", os.path.join(work, "admin.token"),
            "--halt-token-file", os.path.join(work, "halt.token"),
            "--node-token-file", os.path.join(work, "node.token"), "--poll-after-ms", "1500"],
            coord_log)
        base = "http://127.0.0.1:%d" % read_port(os.path.join(work, "coord.port"), coord, coord_log)
        fleet_log = os.path.join(out_dir, "fleet.log")
        fleet = procs.start("fleet", [
            fleet_bin, "--coordinator", base, "--masters", "1", "--agents", "4", "--swap-ms", "2500",
            "--node-token-file", os.path.join(work, "node.token"),
            "--port-file", os.path.join(work, "fleet.port")], fleet_log)
        fleet_url = "http://127.0.0.1:%d" % read_port(os.path.join(work, "fleet.port"), fleet, fleet_log)

        # The page and its headers: safe by construction, no token needed to load it.
        status, headers, body = call(base + "/ui", token=None)
        assert status == 200, (status, body)
        csp = headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
        assert "<script src=\"/ui/app.js\"" in body
        status, _, _ = call(base + "/v1/events/stream", token="wrong")
        assert status == 401, status

        raw = StreamReader(base, ADMIN)
        raw.start()

        port = free_port()
        driver_log = os.path.join(out_dir, "chromedriver.log")
        chromedriver = procs.start("chromedriver", [CHROMEDRIVER, "--port=%d" % port], driver_log)
        def driver_up():
            if chromedriver.poll() is not None:
                raise AssertionError("chromedriver exited: " + open(driver_log).read()[-2000:])
            return answers("http://127.0.0.1:%d/status" % port)
        wait_for(driver_up, 30, 0.1, "chromedriver")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1900", "--user-data-dir=" + os.path.join(work, "chrome")):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Remote(command_executor="http://127.0.0.1:%d" % port, options=options)
        driver.set_page_load_timeout(60)

        # The page redraws as events arrive: read it in one script call (never a stale handle).
        def q(css):
            return driver.execute_script(
                "return document.querySelectorAll(arguments[0]).length", css) > 0

        def count(css):
            return driver.execute_script(
                "return document.querySelectorAll(arguments[0]).length", css)

        def text(css):
            return driver.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css)

        def click(css):
            def attempt():
                try:
                    driver.find_element(By.CSS_SELECTOR, css).click()
                    return True
                except StaleElementReferenceException:
                    return False
            wait_for(attempt, 10, what="a click on " + css)

        def type_into(css, keys):
            driver.find_element(By.CSS_SELECTOR, css).send_keys(keys)

        def shot(name):
            path = os.path.join(out_dir, name)
            driver.save_screenshot(path)
            log("screenshot", path)

        driver.get(base + "/ui")
        # Signing in with the monitor token: reading needs no admin.
        type_into("#signin-token", HALT)
        click("#signin-go")
        wait_for(lambda: text("#conn") == "live", 20, what="the page's stream to connect")
        wait_for(lambda: q("#fleet-body tr[data-role='agent'][data-release='1.0.0']"), 20,
                 what="the fleet on 1.0.0")
        assert text("#fleet-body tr[data-role='agent'] td:nth-child(3)") == "4"

        # Start a rollout from outside: the page learns of it from the stream alone.
        status, _, body = call(base + "/v1/deployments", "POST",
                               {"version": "2.0.0", "max_parallel": 1})
        assert status == 201, body
        dep = json.loads(body)["id"]
        started = time.monotonic()
        wait_for(lambda: dep in text("#dep-title"), 10, what="the deployment on the page")
        log("deployment shown on the page %.2f s after it started" % (time.monotonic() - started))

        # The page follows the rollout: nodes finish, bars and results appear.
        wait_for(lambda: count("#waves tr[data-node] .state.done") >= 2, 60,
                 what="two nodes done on the page")
        wait_for(lambda: count("#timeline rect[data-result='done']") >= 2, 10,
                 what="two finished bars on the timeline")
        phases = driver.execute_script(
            "return [...new Set([...document.querySelectorAll('#timeline rect[data-phase]')]"
            ".map((r) => r.dataset.phase))]")
        log("phases drawn:", ", ".join(sorted(phases)))
        # Staging is drawn when it lasts long enough to be seen (here it takes milliseconds).
        for phase in ("staged", "restarting", "checking"):
            assert q("#timeline rect[data-phase='%s']" % phase), "the timeline draws " + phase
        shot("1-rollout.png")

        # Halt from the page, with the halt token.
        click("#halt")
        wait_for(lambda: q("#dialog[open]"), 5, what="the halt dialog")
        type_into("#dialog-reason", "latency SLO burning (browser test)")
        type_into("#dialog-token", HALT)
        click("#dialog-ok")
        wait_for(lambda: q("#holds-table tr[data-source='ui']"), 10, what="the hold on the page")
        halted_us = int(time.time() * 1_000_000)
        assert text("#holds-table tr[data-source='ui'] .by") == "monitor"
        assert "latency SLO burning" in text("#holds-table tr[data-source='ui'] .reason")
        wait_for(lambda: "hold" in text("dd[data-fact='waiting on']"), 10,
                 what="waiting_on naming the hold")

        # A monitor's hold from outside, its reason holding markup: pushed, and shown as text.
        evil = '<img src=x id="injected" onerror="document.title=1">'
        status, _, body = call(base + "/v1/halt", "POST", {"reason": evil, "source": "sla"}, HALT)
        assert status == 201, body
        answered = time.monotonic()
        pushed = wait_for(lambda: raw.find(lambda m: m[1] == "audit" and m[3].get("action") == "halt"
                                           and m[3].get("detail", "").startswith("sla:")),
                          5, 0.01, "the halt on the raw stream")
        latency = pushed[0] - answered
        log("hold pushed on the stream %.3f s after POST /v1/halt answered" % latency)
        assert latency < 1.0, latency
        assert raw.find(lambda m: m[1] == "change" and m[3].get("holds")), "a change notice for holds"
        wait_for(lambda: q("#holds-table tr[data-source='sla']"), 5, what="the sla hold on the page")
        shown = text("#holds-table tr[data-source='sla'] .reason")
        assert shown == evil, shown
        assert not q("#injected"), "markup from a monitor must never become an element"

        # No new node action while the holds stand (nodes mid-swap finish their own swap).
        window_end = time.monotonic() + 5.0
        while time.monotonic() < window_end:
            _, _, acts = call(fleet_url + "/fleet/actions?since_us=%d" % halted_us, token=None)
            new = [a for a in json.loads(acts)["actions"]
                   if a["kind"] in ("stage", "restart") and a["time_us"] > halted_us]
            assert not new, "node actions after the halt: %s" % new
            time.sleep(0.25)
        done_before = count("#waves tr[data-node] .state.done")
        shot("2-halted.png")

        # Clear both holds as admin from the page: the rollout finishes.
        for source in ("sla", "ui"):
            click("#holds-table tr[data-source='%s'] button" % source)
            wait_for(lambda: q("#dialog[open]"), 5, what="the clear dialog")
            type_into("#dialog-token", ADMIN)
            click("#dialog-ok")
            wait_for(lambda: not q("#holds-table tr[data-source='%s']" % source), 10,
                     what="hold %s gone from the page" % source)
        wait_for(lambda: text("#dep-state") == "done", 90, 0.2, "the deployment done on the page")
        assert count("#waves tr[data-node] .state.done") == 5 > done_before
        wait_for(lambda: q("#fleet-body tr[data-role='agent'][data-release='2.0.0']"), 20,
                 what="the fleet on 2.0.0")
        wait_for(lambda: not q("#fleet-body tr[data-release='1.0.0']"), 20,
                 what="no node left on 1.0.0 in the fleet")
        assert q("#timeline rect.hold-band"), "the hold is drawn across the timeline"
        assert count("#timeline rect[data-result='done']") == 5
        events = text("#event-list")
        assert "halt cleared" in events and "deployment done" in events, events[:2000]
        shot("3-done.png")

        # Resuming: a stream opened with Last-Event-ID gets the events after it first.
        halt_event = raw.find(lambda m: m[1] == "audit" and m[3].get("action") == "halt")
        resumed = StreamReader(base, HALT, int(halt_event[2]) - 1)
        resumed.start()
        wait_for(lambda: resumed.find(lambda m: m[1] == "audit" and m[2] == halt_event[2]), 5,
                 what="the resumed stream's backlog")
        hello = resumed.find(lambda m: m[1] == "hello")
        assert hello and hello[3]["resumed"] is True
        resumed.close()

        # Nothing in the browser's console: no CSP violation, no script error.
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, errors
        log("ok")
        return 0
    finally:
        if raw:
            raw.close()
        if driver:
            try:
                driver.quit()
            except Exception:
                pass
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
