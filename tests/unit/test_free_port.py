"""`free_port` picks ports that an outgoing connection cannot take before the server binds."""

from __future__ import annotations

import socket

from common.emulators import ephemeral_ports, free_port, port_is_free


def test_free_ports_lie_outside_the_range_outgoing_connections_take_their_ports_from():
    ephemeral = ephemeral_ports()
    ports = [free_port() for _ in range(50)]
    assert not any(port in ephemeral for port in ports)
    # Never the same port twice, though none of them is bound yet (two emulators starting).
    assert len(set(ports)) == 50


def test_a_free_port_can_be_listened_on_and_is_then_no_longer_free():
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not port_is_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", port)
