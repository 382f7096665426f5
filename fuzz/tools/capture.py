#!/usr/bin/env python3
"""Records what RTMP clients send: a TCP proxy that writes each
connection's client-to-server bytes to OUT_DIR/conn-N.bin.

usage: capture.py LISTEN_PORT UPSTREAM_PORT OUT_DIR
"""
import os
import socket
import sys
import threading

listen_port, upstream_port, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(out_dir, exist_ok=True)


def pump(src, dst, record):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record:
                record.write(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        if record:
            record.close()
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen()
n = 0
while True:
    client, _ = srv.accept()
    up = socket.create_connection(("127.0.0.1", upstream_port))
    record = open(os.path.join(out_dir, f"conn-{n}.bin"), "wb")
    n += 1
    threading.Thread(target=pump, args=(client, up, record), daemon=True).start()
    threading.Thread(target=pump, args=(up, client, None), daemon=True).start()
