"""Endpoint URL parsing."""

import pytest

from utp.endpoint import EndpointError, parse


def test_unix_path():
    endpoint = parse("unix:///tmp/calc.sock")
    assert (endpoint.scheme, endpoint.address, endpoint.is_abstract, endpoint.framing) == (
        "unix", "/tmp/calc.sock", False, "utp")


def test_unix_abstract():
    endpoint = parse("unix://@calc")
    assert endpoint.address == "\0calc" and endpoint.is_abstract


def test_tcp_ipv4_and_ipv6():
    assert parse("tcp://127.0.0.1:7000").address == ("127.0.0.1", 7000)
    assert parse("tcp://[::1]:7000").address == ("::1", 7000)
    assert parse("tcp://localhost:0").address == ("localhost", 0)


def test_shm_name():
    assert parse("shm://calc-1.x_y").address == "calc-1.x_y"


def test_shm_wait_option():
    assert parse("shm://calc").wait == "adaptive"
    assert parse("shm://calc?wait=spin").wait == "spin"


def test_length_framing_option():
    assert parse("unix:///tmp/old.sock?framing=length").framing == "length"


@pytest.mark.parametrize("url", [
    "calc.sock", "http://x:1", "unix://relative/path", "unix://@", "tcp://host", "tcp://host:99999",
    "tcp://:80", "shm://bad/name", "shm://", "unix:///tmp/x?framing=morse", "unix:///tmp/x?colour=red",
    "shm://calc?framing=length", "shm://calc?wait=forever", "tcp://h:1?wait=spin", "unix:///" + "x" * 200,
])
def test_bad_urls_are_refused_with_the_accepted_forms(url):
    with pytest.raises(EndpointError) as failure:
        parse(url)
    assert "accepted forms" in str(failure.value)
