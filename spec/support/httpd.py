#!/usr/bin/python3
"""Test HTTP(S) server for spec/core/http_spec.lua.

Starts a plain HTTP server on 127.0.0.1 (and, with --cert/--key, an HTTPS
one; with --client-ca as well, an HTTPS one that requires a client
certificate), each on a port the kernel picks. The ports are written as
JSON to --port-file once every server listens. Each request is appended
to --log as "METHOD PATH". The process exits by itself after --lifetime
seconds, so a test that forgets to kill it leaks nothing for long.

Routes:
  /files/NAME          the file NAME from --dir (404 if missing)
  /status/CODE         an empty-ish response with that status
  /flaky/KEY/NAME      503 on the first request for KEY, then /files/NAME
  /drop/NAME           headers for NAME, half the body, then the connection closes
  /stall               headers, a few bytes, then nothing for --stall seconds
  /redirect/NAME       302 to /files/NAME
  /echo                JSON of method, path, headers, body, client certificate
"""
import argparse
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOG_LOCK = threading.Lock()
FLAKY_SEEN = set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    def record(self):
        if ARGS.log:
            with LOG_LOCK, open(ARGS.log, "a") as f:
                f.write("%s %s\n" % (self.command, self.path))

    def send_bytes(self, code, body, ctype="application/octet-stream", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_file(self, name):
        path = os.path.join(ARGS.dir, os.path.basename(name))
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def serve_file(self, name):
        data = self.read_file(name)
        if data is None:
            self.send_bytes(404, b"not found\n", "text/plain")
        else:
            self.send_bytes(200, data)

    def handle_any(self):
        self.record()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("?")[0].split("/")[1:]
        route = parts[0] if parts else ""
        if route == "files" and len(parts) == 2:
            self.serve_file(parts[1])
        elif route == "status" and len(parts) == 2:
            self.send_bytes(int(parts[1]), b"status %s\n" % parts[1].encode(), "text/plain")
        elif route == "flaky" and len(parts) == 3:
            if parts[1] not in FLAKY_SEEN:
                FLAKY_SEEN.add(parts[1])
                self.send_bytes(503, b"try again\n", "text/plain")
            else:
                self.serve_file(parts[2])
        elif route == "drop" and len(parts) == 2:
            data = self.read_file(parts[1]) or b""
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif route == "stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            time.sleep(ARGS.stall)
            self.close_connection = True
        elif route == "redirect" and len(parts) == 2:
            self.send_bytes(302, b"", "text/plain", {"Location": "/files/" + parts[1]})
        elif route == "echo":
            cert = None
            getpeercert = getattr(self.connection, "getpeercert", None)
            if getpeercert is not None and getpeercert():
                subject = dict(x[0] for x in getpeercert()["subject"])
                cert = subject.get("commonName")
            out = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
                "client_cn": cert,
            }
            self.send_bytes(200, json.dumps(out).encode(), "application/json",
                            {"X-Echo": "one", "Set-Cookie": "a=1"})
        else:
            self.send_bytes(404, b"no route\n", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


def serve(server):
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default=".")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--lifetime", type=float, default=60)
    p.add_argument("--stall", type=float, default=5)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca")
    ARGS = p.parse_args()

    ThreadingHTTPServer.daemon_threads = True
    ports = {}
    plain = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ports["http"] = plain.server_address[1]
    serve(plain)
    if ARGS.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
        tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        ports["https"] = tls.server_address[1]
        serve(tls)
        if ARGS.client_ca:
            mctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            mctx.load_cert_chain(ARGS.cert, ARGS.key)
            mctx.load_verify_locations(ARGS.client_ca)
            mctx.verify_mode = ssl.CERT_REQUIRED
            mtls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            mtls.socket = mctx.wrap_socket(mtls.socket, server_side=True)
            ports["mtls"] = mtls.server_address[1]
            serve(mtls)

    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, ARGS.port_file)
    time.sleep(ARGS.lifetime)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
