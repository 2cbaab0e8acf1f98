#!/usr/bin/env python3
"""A small forwarding HTTP proxy for alti's proxy tests (standard library only).

Takes absolute-form requests (`PUT http://host:port/path HTTP/1.1`), forwards them with their
headers and body to the origin, and relays the answer; CONNECT (https) is tunnelled. Each request
is logged as one line `METHOD URL-without-query` to --log, so a test can count what went through.
Writes its port to --port-file (atomically, by rename) once it accepts connections.

    python3 scripts/forwarding-proxy.py --port-file /tmp/proxy.port --log /tmp/proxy.log
"""
import argparse
import http.client
import http.server
import os
import select
import socket
import sys
import threading
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade"}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_lock = threading.Lock()

    def log_message(self, *args):  # quiet: the log file is the record
        pass

    def record(self, line):
        with self.log_lock, open(self.server.log_path, "a") as log:
            log.write(line + "\n")

    def do_CONNECT(self):
        self.record("CONNECT " + self.path)
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=30)
        except OSError as error:
            self.send_error(502, str(error))
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        while True:
            readable, _, _ = select.select(sockets, [], [], 60)
            if not readable:
                break
            for s in readable:
                data = s.recv(65536)
                if not data:
                    upstream.close()
                    return
                (upstream if s is self.connection else self.connection).sendall(data)

    def forward(self):
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            self.send_error(400, "absolute http URL expected")
            return
        self.record(f"{self.command} {url.scheme}://{url.netloc}{url.path}")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        target = url.path + ("?" + url.query if url.query else "")
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        try:
            connection.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                connection.putheader(k, v)
            connection.endheaders(body)
            answer = connection.getresponse()
            payload = answer.read()
        except OSError as error:
            self.send_error(502, str(error))
            return
        finally:
            connection.close()
        self.send_response(answer.status, answer.reason)
        for k, v in answer.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Proxy)
    server.daemon_threads = True
    server.log_path = args.log
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
