"""``python -m utp call``: output and exit codes."""

import socket

from support import python_server, python_utp, run


def test_call_prints_the_number(socket_path):
    with python_server("unix://" + socket_path) as server:
        result = run(python_utp("call", server.url, "add", "-5", "3"))
        assert (result.returncode, result.stdout, result.stderr) == (0, "-2\n", "")


def test_err_reply_goes_to_stderr_with_exit_1(socket_path):
    with python_server("unix://" + socket_path) as server:
        result = run(python_utp("call", server.url, "ADD", "9223372036854775807", "1"))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "Overflow: 9223372036854775807 + 1 does not fit in a signed 64-bit integer\n"
        result = run(python_utp("call", server.url, "POW", "2", "3"))
        assert result.returncode == 1 and result.stderr.startswith("Unknown operation: POW")


def test_no_server_exits_2(socket_path):
    result = run(python_utp("call", "unix://" + socket_path, "ADD", "1", "2"))
    assert result.returncode == 2
    assert "no server at unix://" in result.stderr and "is the server running?" in result.stderr


def test_server_that_never_answers_times_out_with_exit_2(socket_path):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(socket_path)
    silent.listen(1)  # accepts connections (in the backlog), never replies
    try:
        result = run(python_utp("call", "unix://" + socket_path, "ADD", "1", "2", "--timeout", "300ms"))
    finally:
        silent.close()
    assert result.returncode == 2
    assert "no reply from" in result.stderr


def test_bad_url_exits_2_with_the_accepted_forms():
    result = run(python_utp("call", "carrier-pigeon://home", "ADD", "1", "2"))
    assert result.returncode == 2
    assert "accepted forms" in result.stderr


def test_serve_on_a_bad_url_exits_2():
    result = run(python_utp("serve", "calc", "--on", "unix://relative/path"))
    assert result.returncode == 2
    assert "accepted forms" in result.stderr
