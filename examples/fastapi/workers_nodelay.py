"""uvicorn with its one-line fix for `--workers N` on Linux (uvicorn issue #3149,
open as of uvicorn 0.54.0): the listening socket the supervisor binds is
created with protocol 0, accepted connections inherit it, and asyncio turns
Nagle's algorithm off (TCP_NODELAY) only on sockets whose protocol is TCP. A
response written in two parts then waits for the client's delayed ACK: about
40 ms per keep-alive request after the first. This re-labels the listener as
TCP before the workers start. Same command line as uvicorn:

    python workers_nodelay.py app:app --workers 2 --port 8000
"""

import socket
import sys

import uvicorn.config
from uvicorn.main import main

_bind_socket = uvicorn.config.Config.bind_socket


def bind_socket(self):
    sock = _bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock


uvicorn.config.Config.bind_socket = bind_socket

if __name__ == "__main__":
    sys.exit(main())
