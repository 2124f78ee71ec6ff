"""Make the pymodbus client for a connection: TCP, RTU over TCP, TLS or RTU serial.

Why one place: the driver only needs "a client with the read/write calls"; the
transports differ in how the client is built (framer, serial settings, SSL
context), and for TLS in how a failed handshake is explained — pymodbus only
reports "could not connect", while a plant engineer needs to read
"certificate verify failed".
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, AsyncModbusTlsClient

from .models import ModbusConnection, TlsSettings

__all__ = ["explain_tls_failure", "make_client", "tls_context"]


def tls_context(settings: TlsSettings) -> ssl.SSLContext:
    """Client context that verifies the device's certificate and name.

    :raises OSError: a certificate or key file cannot be read.
    :raises ssl.SSLError: a file is not a valid PEM certificate or key.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # Modbus/TCP Security requires ≥ 1.2
    if settings.certfile:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    return context


def make_client(connection: ModbusConnection, name: str) -> Any:
    """A not yet connected pymodbus client for ``connection``.

    Reconnecting is left to the engine (``reconnect_delay=0``), which backs off
    per device.
    """
    c = connection
    common: dict[str, Any] = {
        "timeout": c.timeout,
        "retries": c.retries,
        "reconnect_delay": 0,
        "name": name,
    }
    if c.transport == "rtu":
        assert c.serial_port is not None
        return AsyncModbusSerialClient(
            c.serial_port,
            framer=FramerType.RTU,
            baudrate=c.baudrate,
            bytesize=c.bytesize,
            parity=c.parity,
            stopbits=c.stopbits,
            **common,
        )
    assert c.host is not None
    if c.transport == "tls":
        assert c.tls is not None
        return AsyncModbusTlsClient(
            c.host,
            sslctx=tls_context(c.tls),
            port=c.tcp_port,
            **common,
        )
    framer = FramerType.RTU if c.transport == "rtu_over_tcp" else FramerType.SOCKET
    return AsyncModbusTcpClient(c.host, port=c.tcp_port, framer=framer, **common)


async def explain_tls_failure(connection: ModbusConnection) -> str:
    """Why a TLS connection fails, by trying the handshake once more ourselves."""
    assert connection.tls is not None
    assert connection.host is not None
    try:
        context = tls_context(connection.tls)
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                connection.host,
                connection.tcp_port,
                ssl=context,
            ),
            timeout=connection.timeout,
        )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return f"TLS: {exc}"
    writer.close()
    return "TLS handshake succeeds now; the device closed the connection before"
