"""Lock tokens name their holder (who, host, pid) before 128 random bits (``cache.coordination.
_holder``): what the locks page shows, without the secret that releases the lock."""

from __future__ import annotations

import os
import re
import socket

from cache.coordination import HolderIdentity, holder_of


def test_a_token_names_who_where_and_which_process() -> None:
    me = HolderIdentity.of_process("worker-a-1-abcdef")
    token = me.new_token()
    who, host, rest = token.split("/")
    pid, _, secret = rest.partition(":")
    assert (who, pid) == ("worker-a-1-abcdef", str(os.getpid()))
    assert host == re.sub(r"[^A-Za-z0-9._@=+-]", "-", socket.gethostname())[:64].strip("-.")
    assert re.fullmatch(r"[0-9a-f]{32}", secret)  # 128 random bits, as before
    assert holder_of(token) == me
    assert me.new_token() != token  # every token is fresh


def test_names_are_cleaned_and_old_tokens_name_nobody() -> None:
    odd = HolderIdentity.of_process("a/b:c <script>")
    assert odd.who == "a-b-c--script" and holder_of(odd.new_token()) == odd
    assert holder_of("0123456789abcdef" * 2) is None  # a token of an older process
    assert holder_of("w/h/12:short") is None
    assert HolderIdentity.of_process("").who  # the program's name
