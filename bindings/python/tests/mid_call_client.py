"""A Python client that a test kills with SIGKILL in the middle of a call.

Usage: ``python mid_call_client.py URL partial|loop``

* ``partial`` - on a stream, send a REQUEST frame's header and half its
  payload (the server holds a half frame); on shm, publish a REQUEST and
  never read the answer; print ``mid-call``, then wait to be killed;
* ``loop`` - call ``ADD i 1`` as fast as possible, printing ``calls N``
  after each ten, until killed (the kill lands at an arbitrary point).

Exits by itself after 60 s so a broken test cannot leave it running.
"""

import sys
import time

from utp import frame
from utp.client import Client, open_channel
from utp.endpoint import parse

LIFETIME = 60.0


def partial(url: str) -> None:
    channel = open_channel(parse(url), timeout=5.0)
    data = frame.encode(frame.REQUEST, b"ADD 1000000 2000000", sequence=1)
    if hasattr(channel, "sock"):
        channel.sock.sendall(data[: frame.HEADER_SIZE + 8])
    else:  # shm: a record is published whole, so the call is cut between request and reply
        channel.send(frame.REQUEST, b"ADD 1000000 2000000", 5.0)
    print("mid-call", flush=True)
    time.sleep(LIFETIME)


def loop(url: str) -> None:
    deadline = time.monotonic() + LIFETIME
    with Client(url, timeout=5.0) as client:
        calls = 0
        while time.monotonic() < deadline:
            assert client.calculate("ADD", calls, 1) == calls + 1
            calls += 1
            if calls % 10 == 0:
                print(f"calls {calls}", flush=True)


if __name__ == "__main__":
    {"partial": partial, "loop": loop}[sys.argv[2]](sys.argv[1])
