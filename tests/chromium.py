"""Headless Chromium driven over the Chrome DevTools Protocol, with the standard library only.

The protocol runs over a pipe (`--remote-debugging-pipe`: the browser reads JSON
messages ending in a NUL byte from its file descriptor 3 and writes to 4), so no
websocket client and no driver download is needed: Debian's `chromium` package is all.
tests/test_web.py uses it; `.ci/run` installs the package.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

INSTALL_HINT = (
    "tests/test_web.py drives a real browser and found none of "
    f"{', '.join(BINARIES)} on PATH. Install Debian's package: `apt-get install -y chromium` "
    "(as root; .ci/run does this), or set TFCYCLEGAN_CHROMIUM to the browser's path."
)


def find_browser():
    """The browser's path ($TFCYCLEGAN_CHROMIUM, else the first of `BINARIES` on PATH), or None."""
    chosen = os.environ.get("TFCYCLEGAN_CHROMIUM")
    if chosen:
        return chosen
    return next((path for path in map(shutil.which, BINARIES) if path), None)


class Chromium:
    """One headless browser and one page in it.

    `send(method, **params)` calls a DevTools method on the page and returns its
    result; events received meanwhile are kept in `events` (console messages,
    exceptions) for failure messages.
    """

    def __init__(self, binary, width=1200, height=800):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def as_fds_3_and_4():
            # dup first: a pipe may already be fd 3 or 4, where dup2 would keep close-on-exec.
            read, write = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.profile = tempfile.mkdtemp(prefix="tfcyclegan-chromium-")
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--remote-debugging-pipe", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=as_fds_3_and_4, close_fds=False,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._id = 0
        self.events = []
        self.session = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Runtime.enable")
        self.send("Page.enable")

    def _message(self):
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited: {self.browser_log()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def evaluate(self, expression):
        """The value of a JavaScript expression on the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=120.0, interval=0.2):
        """Polls `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"{expression!r} still false after {timeout} s; {self.console()}")

    def navigate(self, url):
        self.send("Page.navigate", url=url)

    def set_files(self, selector, paths):
        """Chooses `paths` in the file input `selector`, as a person picking files would."""
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[os.fspath(p) for p in paths])

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def console(self):
        """The page's console messages and exceptions so far, for failure messages."""
        lines = []
        for event in self.events:
            if event.get("method") == "Runtime.consoleAPICalled":
                args = event["params"]["args"]
                lines.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif event.get("method") == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                lines.append(details.get("exception", {}).get("description", details.get("text", "")))
        return "console: " + " | ".join(lines[-20:])

    def browser_log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def close(self):
        try:
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)
