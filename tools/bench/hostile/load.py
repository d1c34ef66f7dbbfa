#!/usr/bin/env python3
"""Hostile load against one HTTP server on loopback, for tools/bench/hostile/run.

  load.py halts PORT HALT_TOKEN ADMIN_TOKEN ROUNDS [SCENARIO]
      Holds SCENARIO open while it measures POST /v1/halt (a new connection each, as an
      operator's emergency stop) and clears each hold. SCENARIO: none | idle:N | slow:N.
      idle:N   N connections that connect and send nothing (spread over 127.0.0.1-3, so a
               per-peer cap does not close them)
      slow:N   N connections trickling one header byte every 2 s
  load.py chunked PORT BYTES PARALLEL
      PARALLEL unauthenticated chunked POST /v1/halt bodies of BYTES each; prints the status
      lines the server answered and the bytes it took.
All traffic stays on the loopback interface; every socket is closed at the end.
"""
import socket
import statistics
import sys
import threading
import time

SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def connect(port, source=None, blocking=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.setblocking(blocking)
    return s


def request(port, method, path, token, body=b"", timeout=30.0):
    """One request on a new connection; returns (status, seconds)."""
    start = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        s.sendall(head.encode() + body)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, time.perf_counter() - start
    finally:
        s.close()


def open_idle(port, n):
    conns = []
    for i in range(n):
        try:
            conns.append(connect(port, SOURCES[i % len(SOURCES)], blocking=False))
        except OSError as e:
            print(f"  opened {len(conns)} idle connections, then: {e}", file=sys.stderr)
            break
    return conns


def open_slow(port, n, stop):
    conns = []
    for i in range(n):
        s = connect(port, SOURCES[i % len(SOURCES)], blocking=False)
        conns.append(s)
    text = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
    closed = [0]

    def trickle():
        position = 0
        while not stop.is_set():
            for s in conns:
                try:
                    s.send(text[position:position + 1])
                except OSError:
                    pass
            position = min(position + 1, len(text) - 1)
            stop.wait(2.0)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    return conns, t, closed


def percentile(values, q):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def halts(port, halt_token, admin_token, rounds, scenario):
    stop = threading.Event()
    conns, trickler = [], None
    kind, _, count = scenario.partition(":")
    if kind == "idle":
        conns = open_idle(port, int(count))
        time.sleep(1.0)
    elif kind == "slow":
        conns, trickler, _ = open_slow(port, int(count), stop)
        time.sleep(1.0)
    latencies, failures = [], 0
    try:
        for i in range(rounds):
            source = f"bench-{i}"
            status, seconds = request(port, "POST", "/v1/halt", halt_token,
                                      f'{{"reason":"bench","source":"{source}"}}'.encode())
            if status != 201:
                failures += 1
            else:
                latencies.append(seconds * 1000.0)
            request(port, "DELETE", f"/v1/halt/{source}", admin_token)
            time.sleep(0.02)
    finally:
        stop.set()
        if trickler:
            trickler.join()
        # How many of the held connections the server still keeps open.
        still_open = 0
        for s in conns:
            try:
                still_open += 1 if s.recv(1) is None else 0
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            s.close()
    if not latencies:
        print(f"halts={rounds} failed={failures} (no halt answered)")
        return 1
    print(f"halts={rounds} failed={failures} p50_ms={statistics.median(latencies):.2f} "
          f"p99_ms={percentile(latencies, 99):.2f} max_ms={max(latencies):.2f} "
          f"held_connections_still_open={still_open}/{len(conns)}")
    return 0


def chunked(port, size, parallel):
    results = [None] * parallel

    def one(k):
        s = connect(port)
        s.settimeout(60)
        s.sendall(b"POST /v1/halt HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"
        sent, answer = 0, b""
        s.setblocking(False)
        while sent < size:
            try:
                s.send(piece)
                sent += 0x10000
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError:
                break
            try:
                answer += s.recv(4096)
                if answer:
                    break
            except (BlockingIOError, OSError):
                pass
        s.setblocking(True)
        s.settimeout(10)
        try:
            while b"\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
        s.close()
        results[k] = (answer.split(b"\r\n", 1)[0].decode(errors="replace"), sent)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(parallel)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for status, sent in results:
        print(f"  answer='{status}' body_bytes_sent={sent}")
    print(f"  seconds={time.perf_counter() - start:.2f}")
    return 0


def main(argv):
    if len(argv) >= 6 and argv[1] == "halts":
        return halts(int(argv[2]), argv[3], argv[4], int(argv[5]), argv[6] if len(argv) > 6 else "none")
    if len(argv) == 5 and argv[1] == "chunked":
        return chunked(int(argv[2]), int(argv[3]), int(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
