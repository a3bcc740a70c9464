"""host.listening: the ports a fleet host listens on, from its kernel's socket tables."""

from __future__ import annotations

from conveyor.host.listening import listening_in

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0B00090A:5DC1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0B00090A:0016 0C00090A:D4A2 01 00000000:00000000 02:000A7D8F 00000000     0        0 3 4
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000
   1: 00000000000000000000000001000000:4E21 00000000000000000000000001000000:9C40 06 00000000
"""


def test_listening_sockets_of_both_tables_count_whatever_their_address() -> None:
    # 0x1F90 = 8080 on 127.0.0.1, 0x5DC1 = 24001 on the fleet address, 0x16 = 22 on ::;
    # an established connection (01) and a TIME_WAIT one (06) are not listening.
    assert listening_in(TCP + TCP6) == {8080, 24001, 22}


def test_nothing_to_read_is_nothing_listening() -> None:
    assert listening_in("") == frozenset()
    assert listening_in("garbage line\n") == frozenset()
