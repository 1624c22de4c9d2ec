"""A scriptable OpenFlow 1.3 peer for abuse tests: it does the switch side
of Flowgate's handshake (HELLO, FEATURES, the sync dumps, BARRIER) with as
few or as many ports as asked, then lets a test misbehave on purpose —
endless multipart parts, port storms, a stolen dpid.

Standard library only; loopback only. Every blocking call has a timeout.
"""

import socket
import ssl
import struct
import threading
import time

OFP13 = 4
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY = 0, 1, 2, 3
FEATURES_REQUEST, FEATURES_REPLY = 5, 6
PACKET_IN, PORT_STATUS, PACKET_OUT = 10, 12, 13
MULTIPART_REQUEST, MULTIPART_REPLY = 18, 19
BARRIER_REQUEST, BARRIER_REPLY = 20, 21
MP_DESC, MP_PORT_DESC = 0, 13
REPLY_MORE = 1
PORT_ADD, PORT_DELETE = 0, 1
PORT_LEN = 64


def header(msg_type, length, xid):
    return struct.pack("!BBHI", OFP13, msg_type, length, xid)


def message(msg_type, body=b"", xid=0):
    return header(msg_type, 8 + len(body), xid) + body


def port(port_no, name=None):
    """An ofp_port (64 bytes), up, 10 Gb/s."""
    name = (name or "p%d" % port_no).encode()[:15]
    mac = struct.pack("!HI", 0x0200, port_no)
    return struct.pack(
        "!I4x6s2x16sIIIIIIII", port_no, mac, name.ljust(16, b"\0"), 0, 0, 0x2000, 0, 0, 0, 10_000_000, 10_000_000
    )


def multipart_reply(mp_type, body, xid, more=False):
    flags = REPLY_MORE if more else 0
    return message(MULTIPART_REPLY, struct.pack("!HH4x", mp_type, flags) + body, xid)


def port_status(reason, port_no):
    return message(PORT_STATUS, struct.pack("!B7x", reason) + port(port_no))


class OfPeer:
    """One switch connection to a controller.

    `connect()` then `handshake()` makes it a ready switch with `ports`;
    afterwards `serve()` in a thread answers echoes and barriers while the
    test sends what it likes with `send()`. `on_port_desc`, when set,
    replaces the PORT_DESC answer (called with the request's xid).
    """

    def __init__(self, host, port_no, dpid, ports=(1,), tls=None, timeout=10):
        self.addr = (host, port_no)
        self.dpid = dpid
        self.ports = list(ports)
        self.tls = tls
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.on_port_desc = None
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.received = []

    def connect(self):
        raw = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname="flowgate") if self.tls else raw
        self.send(message(HELLO, struct.pack("!HHI", 1, 8, 1 << OFP13)))
        return self

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def recv_message(self):
        """The next whole message as (type, xid, body); None once closed."""
        while True:
            if len(self.buf) >= 8:
                _, msg_type, length, xid = struct.unpack("!BBHI", self.buf[:8])
                if len(self.buf) >= length:
                    body, self.buf = self.buf[8:length], self.buf[length:]
                    return msg_type, xid, body
            try:
                chunk = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.closed.set()
                return None
            self.buf += chunk

    def answer(self, msg_type, xid, body):
        """Answers what a switch must answer; True if it was such a request."""
        if msg_type == ECHO_REQUEST:
            self.send(message(ECHO_REPLY, body, xid))
        elif msg_type == FEATURES_REQUEST:
            features = struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0x4F, 0)
            self.send(message(FEATURES_REPLY, features, xid))
        elif msg_type == BARRIER_REQUEST:
            self.send(message(BARRIER_REPLY, b"", xid))
        elif msg_type == MULTIPART_REQUEST:
            (mp_type,) = struct.unpack("!H", body[:2])
            if mp_type == MP_PORT_DESC and self.on_port_desc is not None:
                self.on_port_desc(xid)
            elif mp_type == MP_PORT_DESC:
                ports = b"".join(port(n) for n in self.ports)
                self.send(multipart_reply(mp_type, ports, xid))
            elif mp_type == MP_DESC:
                desc = b"flowgate-lab".ljust(256, b"\0") * 3 + b"0".ljust(32, b"\0") + b"ofpeer".ljust(256, b"\0")
                self.send(multipart_reply(mp_type, desc, xid))
            else:
                self.send(multipart_reply(mp_type, b"", xid))
        else:
            return False
        return True

    def handshake(self, timeout=10):
        """Answers until the controller's sync barrier; the switch is then
        ready on the controller's side."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.recv_message()
            if msg is None:
                raise ConnectionError("controller closed the connection during the handshake")
            self.answer(*msg)
            if msg[0] == BARRIER_REQUEST:
                return self
        raise TimeoutError("no sync barrier within %ss" % timeout)

    def serve(self):
        """Answers requests until the connection closes (run in a thread)."""
        while True:
            msg = self.recv_message()
            if msg is None:
                return
            if not self.answer(*msg):
                self.received.append(msg)

    def serve_in_background(self):
        thread = threading.Thread(target=self.serve, daemon=True)
        thread.start()
        return thread

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


def rss_kib(pid):
    """Resident set size of process `pid`, in KiB."""
    with open("/proc/%d/status" % pid, encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError("no VmRSS for pid %d" % pid)
