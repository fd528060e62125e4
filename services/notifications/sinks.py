"""A local SMS endpoint and a local SMTP mailbox, to try the real providers without a real
SMS gateway or mail server (development, demos and the tests).

    python -m services.notifications.sinks sms  --port 8125 --log var/sms.jsonl
    python -m services.notifications.sinks smtp --port 2525 --maildir var/mailbox

The SMS endpoint takes what the `http` provider POSTs ({id, to, text}) and answers 200, or 503 to its
first `--fail N` requests; each request is one JSON line in the log. The mailbox speaks just
enough SMTP for smtplib and keeps each mail as an .eml file. Stopping either is an outage the
delivery sweep has to ride out.
"""
import argparse
import json
import os
import socket
import socketserver
import threading
import time
# The classes, bound at import: once nameko's web module is imported without eventlet's monkey
# patching, the module name http.server can resolve to eventlet's green copy, which stalls.
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Served:
    """A socket server in a thread of its own: `start()` (in tests) or `server.serve_forever()`."""

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _HttpServer(ThreadingHTTPServer):
    # A delivery sweep has up to `sends_at_once` connections opening together; the default
    # backlog of 5 resets the rest.
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        self.connections = set()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        self.connections.discard(request)
        super().shutdown_request(request)

    def server_close(self):
        """The kept-open connections closed too, as a gateway that goes down closes them: a
        stopped endpoint answers nobody."""
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        super().server_close()


class SmsEndpoint(_Served):
    """An HTTP server on `port` (0: any free one); `received` holds every request's JSON.
    `delay` seconds before each answer stand for a real SMS gateway's latency (benches)."""

    def __init__(self, port=0, failures=0, log_path=None, host="127.0.0.1", delay=0.0):
        self.failures, self.received, self.log_path, self.delay = failures, [], log_path, delay
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"     # keep-alive, as a real gateway answers
            # the headers and the body go out in two writes: with Nagle's algorithm on a kept
            # connection the second waited for the client's delayed ACK (~40 ms a request)
            disable_nagle_algorithm = True

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if endpoint.delay:
                    time.sleep(endpoint.delay)
                ok = endpoint.take(body)
                answer = b"ok" if ok else b"busy"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = _HttpServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/send"

    def take(self, body):
        self.received.append(body)
        ok = len(self.received) > self.failures
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ok": ok, **body},
                                     ensure_ascii=False) + "\n")
        return ok


class SmtpMailbox(_Served):
    """The least SMTP server that takes mail; `messages` holds each mail's raw bytes."""

    def __init__(self, port=0, maildir=None, host="127.0.0.1"):
        self.messages, self.maildir = [], maildir
        mailbox = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.reply(b"220 propdesk mailbox ready")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    verb = line.strip().split(b" ", 1)[0].upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.reply(b"250 propdesk mailbox")
                    elif verb == b"DATA":
                        self.reply(b"354 end with <CRLF>.<CRLF>")
                        data = b""
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.readline()
                            if not chunk:
                                return
                            data += chunk
                        mailbox.keep(data[:-5].replace(b"\r\n..", b"\r\n."))
                        self.reply(b"250 queued")
                    elif verb == b"QUIT":
                        self.reply(b"221 bye")
                        return
                    else:
                        self.reply(b"250 ok")

            def reply(self, text):
                self.wfile.write(text + b"\r\n")
                self.wfile.flush()

        self.server = socketserver.ThreadingTCPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def keep(self, raw):
        self.messages.append(raw)
        if self.maildir:
            os.makedirs(self.maildir, exist_ok=True)
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{len(self.messages):04d}.eml"
            with open(os.path.join(self.maildir, name), "wb") as f:
                f.write(raw)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.notifications.sinks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True)
    sms = kinds.add_parser("sms", help="an SMS endpoint for the http provider")
    sms.add_argument("--port", type=int, default=8125)
    sms.add_argument("--fail", type=int, default=0, help="answer 503 to the first N requests")
    sms.add_argument("--log", default="var/sms.jsonl", help="one JSON line per request")
    smtp = kinds.add_parser("smtp", help="an SMTP mailbox for the smtp provider")
    smtp.add_argument("--port", type=int, default=2525)
    smtp.add_argument("--maildir", default="var/mailbox", help="one .eml file per mail")
    args = parser.parse_args(argv)
    if args.kind == "sms":
        os.makedirs(os.path.dirname(args.log) or ".", exist_ok=True)
        sink = SmsEndpoint(args.port, args.fail, args.log)
        print(f"SMS endpoint on {sink.url}, logging to {args.log}", flush=True)
    else:
        sink = SmtpMailbox(args.port, args.maildir)
        print(f"SMTP mailbox on 127.0.0.1:{sink.port}, keeping mail in {args.maildir}/", flush=True)
    try:
        sink.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
