"""A fake Telegram Bot API for usher's alert tests (Python standard library only).

FakeTelegram() listens on 127.0.0.1 (a free port), answers POST
/bot<TOKEN>/sendMessage, and records every request. Answers are programmed:
queue some with push() (used first, in order) and set the rest with
default(). An answer is one of

    ok()                        200 {"ok": true, "result": {...}}
    bad_request(description)    400 with that description
    too_many(retry_after)       429 with parameters.retry_after
    server_error()              500
    migrate(new_chat_id)        400 with parameters.migrate_to_chat_id
    hang(seconds)               no answer for `seconds` (or until close()), then the
                                connection is closed without one

Like the real Bot API it checks what it is given: the token in the path, a JSON
body with chat_id and text, parse_mode HTML, and text that Telegram's HTML parser
accepts (only supported tags, properly nested and closed, no bare <, > or &, only
&lt; &gt; &amp; &quot; and numeric entities) and that is at most 4096 characters
(UTF-16 code units) after entity parsing. A message that fails these checks gets
400 "Bad Request: can't parse entities: ..." or "Bad Request: message is too long",
and is recorded with the problem in `rejected_reason`.
"""

import html
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji"}
ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
TAG = re.compile(r"<(/?)([a-z][a-z0-9-]*)((?:\s+[a-z-]+(?:=\"[^\"<>]*\")?)*)\s*>")
MAX_LENGTH = 4096


def utf16_length(text):
    return len(text.encode("utf-16-le")) // 2


def parse_telegram_html(text):
    """Returns (visible_text, error). error is None when Telegram would accept `text`."""
    out = []
    stack = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = TAG.match(text, i)
            if not m:
                return None, f"unsupported start tag or bare '<' at byte offset {i}"
            closing, name = m.group(1) == "/", m.group(2)
            if name not in ALLOWED_TAGS:
                return None, f"unsupported start tag \"{name}\" at byte offset {i}"
            if closing:
                if not stack or stack[-1] != name:
                    return None, f"unmatched end tag at byte offset {i}, expected \"</{stack[-1] if stack else ''}>\", found \"</{name}>\""
                stack.pop()
            else:
                stack.append(name)
            i = m.end()
        elif ch == "&":
            m = ENTITY.match(text, i)
            if not m:
                return None, f"unsupported HTML entity or bare '&' at byte offset {i}"
            out.append(html.unescape(m.group(0)))
            i = m.end()
        elif ch == ">":
            return None, f"bare '>' at byte offset {i}"
        else:
            out.append(ch)
            i += 1
    if stack:
        return None, f"can't find end tag corresponding to start tag \"{stack[-1]}\""
    return "".join(out), None


class Recorded:
    """One request as the fake saw it."""

    def __init__(self, path, token, body, received_at):
        self.path = path
        self.token = token
        self.body = body            # parsed JSON (or None)
        self.received_at = received_at
        self.status = None          # what the fake answered (None: hung up)
        self.rejected_reason = None
        self.visible = None         # the text after entity parsing

    @property
    def chat_id(self):
        return None if self.body is None else self.body.get("chat_id")

    @property
    def text(self):
        return None if self.body is None else self.body.get("text")

    def __repr__(self):
        return f"<Recorded chat={self.chat_id} status={self.status} text={str(self.text)[:80]!r}>"


def ok():
    return ("ok",)


def bad_request(description="Bad Request: chat not found"):
    return ("status", 400, {"ok": False, "error_code": 400, "description": description})


def too_many(retry_after=1):
    return ("status", 429, {"ok": False, "error_code": 429,
                            "description": f"Too Many Requests: retry after {retry_after}",
                            "parameters": {"retry_after": retry_after}})


def server_error():
    return ("status", 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"})


def migrate(new_chat_id):
    return ("status", 400, {"ok": False, "error_code": 400,
                            "description": "Bad Request: group chat was upgraded to a supergroup chat",
                            "parameters": {"migrate_to_chat_id": new_chat_id}})


def hang(seconds=30.0):
    return ("hang", seconds)


class FakeTelegram:
    def __init__(self, token, host="127.0.0.1", within=None):
        """Listens on `host`:<free port>. `within(make)`, if given, creates the
        listener (net_faults' link.within: in a network namespace, with `host`
        the address of its end of the link)."""
        self.token = token
        self.requests = []
        self._lock = threading.Condition()
        self._queue = []
        self._default = ok()
        self._closing = threading.Event()
        self._message_id = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as usher reuses its connection

            def log_message(self, *args):
                pass

            def do_POST(self):
                fake._handle(self)

        def make():
            return ThreadingHTTPServer((host, 0), Handler)
        self.server = within(make) if within else make()
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # --- programming -----------------------------------------------------------
    def default(self, answer):
        with self._lock:
            self._default = answer

    def push(self, *answers):
        with self._lock:
            self._queue.extend(answers)

    def close(self):
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    # --- inspection --------------------------------------------------------------
    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def delivered(self):
        """Requests answered 200 (messages that reached the chat)."""
        return [r for r in self.snapshot() if r.status == 200]

    def wait_for(self, predicate, timeout=15.0, what="the expected requests"):
        """Waits until predicate(snapshot) is true; returns the snapshot."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                snap = list(self.requests)
                if predicate(snap):
                    return snap
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake Telegram: timed out waiting for {what}; got {snap}")
                self._lock.wait(min(left, 0.2))

    def wait_delivered(self, count, timeout=15.0):
        snap = self.wait_for(lambda s: len([r for r in s if r.status == 200]) >= count, timeout,
                             f"{count} delivered messages")
        return [r for r in snap if r.status == 200]

    # --- serving -----------------------------------------------------------------
    def _next_answer(self):
        with self._lock:
            return self._queue.pop(0) if self._queue else self._default

    def _handle(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        m = re.fullmatch(r"/bot([^/]+)/sendMessage", handler.path)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            body = None
        rec = Recorded(handler.path, m.group(1) if m else None, body, time.monotonic())
        refusal = self._check(rec, m)
        # Published once its text is parsed: a waiting predicate reads
        # rec.visible (it was appended first and read as None once).
        with self._lock:
            self.requests.append(rec)
            self._lock.notify_all()
        if refusal is not None:
            return self._answer(handler, rec, *refusal)

        answer = self._next_answer()
        if answer[0] == "hang":
            self._closing.wait(answer[1])
            handler.close_connection = True
            return None
        if answer[0] == "ok":
            with self._lock:
                self._message_id += 1
                message_id = self._message_id
            return self._answer(handler, rec, 200, {"ok": True, "result": {
                "message_id": message_id, "date": int(time.time()),
                "chat": {"id": body["chat_id"]}, "text": rec.visible}})
        return self._answer(handler, rec, answer[1], answer[2])

    def _check(self, rec, m):
        """(status, payload) of a refusal, or None; sets rec.visible and
        rec.rejected_reason."""
        body = rec.body
        if not m or rec.token != self.token:
            return (401 if m else 404, {"ok": False, "error_code": 401 if m else 404,
                                        "description": "Unauthorized" if m else "Not Found"})
        if not isinstance(body, dict) or "chat_id" not in body or not isinstance(body.get("text"), str):
            return (400, {"ok": False, "error_code": 400,
                          "description": "Bad Request: message text is empty"})
        if body.get("parse_mode") != "HTML":
            rec.rejected_reason = "parse_mode is not HTML"
            return (400, {"ok": False, "error_code": 400,
                          "description": "Bad Request: parse_mode must be HTML here"})
        visible, error = parse_telegram_html(body["text"])
        if error:
            rec.rejected_reason = error
            return (400, {"ok": False, "error_code": 400,
                          "description": f"Bad Request: can't parse entities: {error}"})
        rec.visible = visible
        if utf16_length(visible) > MAX_LENGTH or not visible.strip():
            rec.rejected_reason = f"message has {utf16_length(visible)} characters"
            return (400, {"ok": False, "error_code": 400,
                          "description": "Bad Request: message is too long"})
        return None

    def _answer(self, handler, rec, status, payload):
        # Recorded before the answer is written: a client that has read it
        # (`usher alerts test`, which then exits) must find it in
        # delivered(). Recorded after, a loaded machine let the test look
        # between the two and miss the last message.
        with self._lock:
            rec.status = status
            self._lock.notify_all()
        data = json.dumps(payload).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass
