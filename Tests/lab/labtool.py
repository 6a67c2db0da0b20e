#!/usr/bin/env python3
"""Probes for the tern lab (stdlib only). Run inside a lab host with
`lab.sh exec HOST python3 labtool.py SUBCOMMAND ...`.

  echo-server --bind IP --ports P[,P...]    UDP and TCP: answer each datagram
                                            (or connection) with "IP:PORT" as seen
  udp-probe --dest IP:P [--dest ...]        one socket to several destinations;
                                            prints "dest=IP:P reply=TEXT" or "... timeout"
  tcp-probe --dest IP:P                     connect, print "dest=IP:P reply=TEXT"
  icmp-probe --dest IP:P [--bind-port P]    one datagram from a connected socket: prints
                                            "icmp=port-unreachable" (the kernel reported
                                            an ICMP error: exit 0) or "silent" (exit 1)
  punch --port P --peer IP:P --seconds S    UDP hole punch: send to the peer every
                                            50 ms, print "received=N from=..."
  stun --server IP:P --transport udp|tcp    Binding request; prints "mapped=IP:PORT"
  turn --server IP:P --transport udp|tcp --secret S [--peer IP --wait S]
                                            Allocate with REST credentials, print
                                            "relayed=IP:PORT mapped=IP:PORT"; with
                                            --peer, permit it and answer its data
  turn-proxy --listen IP:P --server IP:P
                                            UDP proxy in front of a TURN server that
                                            answers the first authenticated request of
                                            each method from each client with 438 Stale
                                            Nonce (the nonce it carried), passes the rest
                                            on; prints "refused=METHOD from=IP:P" per 438
  tcp-sink --port P / tcp-send --dest IP:P --seconds S
                                            bulk TCP; the sink prints Mbit/s
Every subcommand exits 0 on success, 1 on failure.
"""
import argparse
import base64
import hashlib
import hmac
import os
import select
import socket
import struct
import sys
import time
import zlib

MAGIC = 0x2112A442


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def fmt(addr):
    return f"{addr[0]}:{addr[1]}"


# --- echo server / probes --------------------------------------------------

def cmd_echo_server(a):
    ports = [int(p) for p in a.ports.split(",")]
    udp, tcp = {}, {}
    for p in ports:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        u.bind((a.bind, p))
        udp[u] = p
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((a.bind, p))
        t.listen(64)
        tcp[t] = p
    print(f"ready ports={a.ports}", flush=True)
    while True:
        r, _, _ = select.select(list(udp) + list(tcp), [], [])
        for s in r:
            if s in udp:
                data, src = s.recvfrom(2048)
                s.sendto(fmt(src).encode(), src)
            else:
                c, src = s.accept()
                try:
                    c.sendall(fmt(src).encode())
                finally:
                    c.close()


def cmd_udp_probe(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", a.bind_port))
    ok = True
    for d in a.dest:
        dest = hostport(d)
        reply = None
        deadline = time.monotonic() + a.timeout
        while reply is None and time.monotonic() < deadline:
            s.sendto(b"probe", dest)   # a few tries: the lab may be lossy
            r, _, _ = select.select([s], [], [], min(0.3, max(0.0, deadline - time.monotonic())))
            while r:
                data, src = s.recvfrom(2048)
                if src == dest:
                    reply = data.decode(errors="replace")
                    break
                r, _, _ = select.select([s], [], [], 0)
        if reply is None:
            ok = False
            print(f"dest={d} timeout", flush=True)
        else:
            print(f"dest={d} reply={reply}", flush=True)
    return 0 if ok else 1


def cmd_icmp_probe(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", a.bind_port))
    s.connect(hostport(a.dest))
    s.settimeout(a.timeout)
    try:
        s.send(b"probe")
        s.recv(2048)
        print("reply", flush=True)
        return 1
    except ConnectionRefusedError:
        print("icmp=port-unreachable", flush=True)
        return 0
    except socket.timeout:
        print("silent", flush=True)
        return 1


def cmd_tcp_probe(a):
    try:
        c = socket.create_connection(hostport(a.dest), timeout=a.timeout)
        c.settimeout(a.timeout)
        data = c.recv(2048)
        c.close()
    except OSError as e:
        print(f"dest={a.dest} error={e.__class__.__name__}:{e.strerror or e}", flush=True)
        return 1
    print(f"dest={a.dest} reply={data.decode(errors='replace')}", flush=True)
    return 0


def cmd_punch(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", a.port))
    peer = hostport(a.peer)
    got, srcs = 0, set()
    end = time.monotonic() + a.seconds
    nxt = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= nxt:
            try:
                s.sendto(b"punch", peer)
            except OSError:
                pass
            nxt = now + 0.05
        r, _, _ = select.select([s], [], [], max(0.0, min(nxt, end) - time.monotonic()))
        if r:
            try:
                data, src = s.recvfrom(2048)
            except OSError:
                continue
            got += 1
            srcs.add(fmt(src))
    print(f"received={got} from={','.join(sorted(srcs)) or '-'}", flush=True)
    return 0 if got else 1


# --- STUN / TURN -------------------------------------------------------------

class Stun:
    """Just enough of RFC 8489 / 8656 for the lab's checks."""

    BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION = 0x001, 0x003, 0x004, 0x006, 0x007, 0x008
    SUCCESS, ERROR, INDICATION = 0x100, 0x110, 0x010
    A_USERNAME, A_MI, A_ERROR, A_PEER, A_DATA, A_REALM, A_NONCE = 0x6, 0x8, 0x9, 0x12, 0x13, 0x14, 0x15
    A_RELAYED, A_REQ_TRANSPORT, A_MAPPED, A_FINGERPRINT = 0x16, 0x19, 0x20, 0x8028

    @staticmethod
    def attr(t, v):
        return struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4)

    @staticmethod
    def xaddr(ip, port):
        x = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
        return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), x)

    @staticmethod
    def parse_xaddr(v):
        _, fam, port, x = struct.unpack("!BBHI", v[:8])
        if fam != 1:
            return None
        return socket.inet_ntoa(struct.pack("!I", x ^ MAGIC)), port ^ (MAGIC >> 16)

    @staticmethod
    def build(mtype, attrs, key=None, txid=None):
        txid = txid or os.urandom(12)
        body = b"".join(Stun.attr(t, v) for t, v in attrs)
        if key is not None:   # MESSAGE-INTEGRITY covers the header with the length including itself
            hdr = struct.pack("!HHI", mtype, len(body) + 24, MAGIC) + txid
            mac = hmac.new(key, hdr + body, hashlib.sha1).digest()
            body += Stun.attr(Stun.A_MI, mac)
        hdr = struct.pack("!HHI", mtype, len(body) + 8, MAGIC) + txid
        crc = (zlib.crc32(hdr + body) ^ 0x5354554E) & 0xFFFFFFFF
        body += Stun.attr(Stun.A_FINGERPRINT, struct.pack("!I", crc))
        return struct.pack("!HHI", mtype, len(body), MAGIC) + txid + body, txid

    @staticmethod
    def parse(buf):
        if len(buf) < 20:
            return None
        mtype, length, magic = struct.unpack("!HHI", buf[:8])
        if magic != MAGIC or mtype & 0xC000 or len(buf) < 20 + length:
            return None
        attrs, i = {}, 20
        while i + 4 <= 20 + length:
            t, ln = struct.unpack("!HH", buf[i:i + 4])
            attrs.setdefault(t, buf[i + 4:i + 4 + ln])
            i += 4 + ln + (-ln % 4)
        return mtype, buf[8:20], attrs


class StunConn:
    def __init__(self, server, transport, timeout):
        self.server, self.transport, self.timeout = server, transport, timeout
        if transport == "tcp":
            self.s = socket.create_connection(server, timeout=timeout)
            self.buf = b""
        else:
            self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.s.connect(server)
        self.s.settimeout(timeout)

    def send(self, msg):
        self.s.sendall(msg) if self.transport == "tcp" else self.s.send(msg)

    def recv(self, timeout):
        """One STUN message, or None on timeout."""
        self.s.settimeout(timeout)
        try:
            if self.transport == "udp":
                return Stun.parse(self.s.recv(4096))
            while True:
                if len(self.buf) >= 20:
                    n = 20 + struct.unpack("!H", self.buf[2:4])[0]
                    if len(self.buf) >= n:
                        msg, self.buf = self.buf[:n], self.buf[n:]
                        return Stun.parse(msg)
                chunk = self.s.recv(4096)
                if not chunk:
                    return None
                self.buf += chunk
        except (socket.timeout, ConnectionError):
            return None

    def transact(self, msg, txid):
        """Sends (retransmitting on UDP) until the response with txid arrives."""
        tries = 7 if self.transport == "udp" else 1
        rto = 0.25
        for _ in range(tries):
            self.send(msg)
            end = time.monotonic() + (rto if self.transport == "udp" else self.timeout)
            while time.monotonic() < end:
                m = self.recv(max(0.01, end - time.monotonic()))
                if m and m[1] == txid:
                    return m
            rto = min(rto * 2, 2.0)
        return None


def cmd_stun(a):
    try:
        c = StunConn(hostport(a.server), a.transport, a.timeout)
    except OSError as e:
        print(f"error={e}", flush=True)
        return 1
    msg, txid = Stun.build(Stun.BINDING, [])
    m = c.transact(msg, txid)
    if m is None:
        print("timeout", flush=True)
        return 1
    mtype, _, attrs = m
    if mtype != Stun.BINDING | Stun.SUCCESS or Stun.A_MAPPED not in attrs:
        print(f"bad-response type=0x{mtype:04x}", flush=True)
        return 1
    print(f"mapped={fmt(Stun.parse_xaddr(attrs[Stun.A_MAPPED]))}", flush=True)
    return 0


def cmd_turn(a):
    """Allocate (REST credentials, as `tern relay` will mint them), optionally
    permit one peer IP and answer each Data indication from it with a Send
    indication carrying "IP:PORT" of the peer as the relay saw it."""
    try:
        c = StunConn(hostport(a.server), a.transport, a.timeout)
    except OSError as e:
        print(f"error={e}", flush=True)
        return 1
    username = f"{int(time.time()) + 3600}:lab".encode()
    password = base64.b64encode(hmac.new(a.secret.encode(), username, hashlib.sha1).digest())
    transport = struct.pack("!B3x", 17)   # UDP

    msg, txid = Stun.build(Stun.ALLOCATE, [(Stun.A_REQ_TRANSPORT, transport)])
    m = c.transact(msg, txid)
    if m is None or m[0] != Stun.ALLOCATE | Stun.ERROR or Stun.A_NONCE not in m[2]:
        print("no-401-challenge", flush=True)
        return 1
    realm, nonce = m[2][Stun.A_REALM], m[2][Stun.A_NONCE]
    key = hashlib.md5(username + b":" + realm + b":" + password).digest()
    auth = [(Stun.A_USERNAME, username), (Stun.A_REALM, realm), (Stun.A_NONCE, nonce)]

    msg, txid = Stun.build(Stun.ALLOCATE, [(Stun.A_REQ_TRANSPORT, transport)] + auth, key)
    m = c.transact(msg, txid)
    if m is None or m[0] != Stun.ALLOCATE | Stun.SUCCESS:
        err = m and m[2].get(Stun.A_ERROR, b"")
        print(f"allocate-failed {err[4:].decode(errors='replace') if err else 'timeout'}", flush=True)
        return 1
    relayed = Stun.parse_xaddr(m[2][Stun.A_RELAYED])
    mapped = Stun.parse_xaddr(m[2][Stun.A_MAPPED])
    print(f"relayed={fmt(relayed)} mapped={fmt(mapped)}", flush=True)
    if not a.peer:
        return 0

    msg, txid = Stun.build(Stun.CREATE_PERMISSION, [(Stun.A_PEER, Stun.xaddr(a.peer, 0))] + auth, key)
    m = c.transact(msg, txid)
    if m is None or m[0] != Stun.CREATE_PERMISSION | Stun.SUCCESS:
        err = m and m[2].get(Stun.A_ERROR, b"")
        print(f"permission-failed {err[4:].decode(errors='replace') if err else 'timeout'}", flush=True)
        return 1
    print(f"permitted={a.peer}", flush=True)
    got = 0
    end = time.monotonic() + a.wait
    while time.monotonic() < end:
        m = c.recv(max(0.01, end - time.monotonic()))
        if not m or m[0] != Stun.DATA | Stun.INDICATION:
            continue
        peer = Stun.parse_xaddr(m[2][Stun.A_PEER])
        got += 1
        print(f"data from={fmt(peer)} payload={m[2].get(Stun.A_DATA, b'').decode(errors='replace')}", flush=True)
        reply, _ = Stun.build(Stun.SEND | Stun.INDICATION, [(Stun.A_PEER, Stun.xaddr(*peer)), (Stun.A_DATA, fmt(peer).encode())])
        c.send(reply)
    return 0 if got else 1


# --- a TURN server that says "stale nonce" once per request kind -------------

def cmd_turn_proxy(a):
    """Every client (source IP:port) gets its own upstream socket, so the
    TURN server sees one 5-tuple per client. A request with a NONCE (an
    authenticated one: Allocate, Refresh, CreatePermission, ChannelBind) is
    answered 438 the first time its method is seen from that client, with
    REALM and the same NONCE (so the retry is valid for the server behind:
    this proxy cannot make nonces the server would accept). Everything else,
    ChannelData and indications included, is passed on both ways."""
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.bind(hostport(a.listen))
    server = hostport(a.server)
    upstream, client_of, refused = {}, {}, set()
    names = {0x003: "Allocate", 0x004: "Refresh", 0x008: "CreatePermission", 0x009: "ChannelBind"}
    print(f"ready listen={a.listen}", flush=True)
    while True:
        r, _, _ = select.select([listen] + list(client_of), [], [])
        for s in r:
            try:
                data, src = s.recvfrom(65536)
            except OSError:
                continue
            if s is not listen:
                listen.sendto(data, client_of[s])
                continue
            m = Stun.parse(data) if data[:1] in (b"\x00", b"\x01") else None
            if m is not None:
                mtype, txid, attrs = m
                method = (mtype & 0x000F) | ((mtype & 0x00E0) >> 1) | ((mtype & 0x3E00) >> 2)
                is_request = (mtype & 0x0110) == 0
                if is_request and method in names and Stun.A_NONCE in attrs and (src, method) not in refused:
                    refused.add((src, method))
                    err = struct.pack("!HBB", 0, 4, 38) + b"Stale Nonce"
                    reply, _ = Stun.build(method | Stun.ERROR, [(Stun.A_ERROR, err), (Stun.A_REALM, attrs.get(Stun.A_REALM, b"")),
                                                               (Stun.A_NONCE, attrs[Stun.A_NONCE])], txid=txid)
                    listen.sendto(reply, src)
                    print(f"refused={names[method]} from={fmt(src)}", flush=True)
                    continue
            up = upstream.get(src)
            if up is None:
                up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                up.bind((hostport(a.listen)[0], 0))
                upstream[src], client_of[up] = up, src
            up.sendto(data, server)


# --- bulk TCP ---------------------------------------------------------------

def cmd_tcp_sink(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", a.port))
    ls.listen(1)
    print("ready", flush=True)
    c, src = ls.accept()
    total, start = 0, time.monotonic()
    buf = bytearray(1 << 18)
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        total += n
    secs = time.monotonic() - start
    print(f"bytes={total} seconds={secs:.2f} mbit={total * 8 / secs / 1e6:.1f}", flush=True)
    return 0


def cmd_tcp_send(a):
    c = socket.create_connection(hostport(a.dest), timeout=10)
    chunk = b"x" * (1 << 16)
    end = time.monotonic() + a.seconds
    total = 0
    while time.monotonic() < end:
        total += c.send(chunk)
    c.close()
    print(f"sent={total}", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description="tern lab probes", epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("echo-server"); p.add_argument("--bind", default="0.0.0.0"); p.add_argument("--ports", required=True)
    p.set_defaults(fn=cmd_echo_server)
    p = sub.add_parser("udp-probe"); p.add_argument("--dest", action="append", required=True)
    p.add_argument("--bind-port", type=int, default=0); p.add_argument("--timeout", type=float, default=2.0)
    p.set_defaults(fn=cmd_udp_probe)
    p = sub.add_parser("icmp-probe"); p.add_argument("--dest", required=True); p.add_argument("--bind-port", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1.0); p.set_defaults(fn=cmd_icmp_probe)
    p = sub.add_parser("tcp-probe"); p.add_argument("--dest", required=True); p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(fn=cmd_tcp_probe)
    p = sub.add_parser("punch"); p.add_argument("--port", type=int, required=True); p.add_argument("--peer", required=True)
    p.add_argument("--seconds", type=float, default=3.0); p.set_defaults(fn=cmd_punch)
    p = sub.add_parser("stun"); p.add_argument("--server", required=True); p.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    p.add_argument("--timeout", type=float, default=3.0); p.set_defaults(fn=cmd_stun)
    p = sub.add_parser("turn"); p.add_argument("--server", required=True); p.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    p.add_argument("--secret", required=True); p.add_argument("--peer"); p.add_argument("--wait", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=3.0); p.set_defaults(fn=cmd_turn)
    p = sub.add_parser("turn-proxy"); p.add_argument("--listen", required=True); p.add_argument("--server", required=True)
    p.set_defaults(fn=cmd_turn_proxy)
    p = sub.add_parser("tcp-sink"); p.add_argument("--port", type=int, required=True); p.set_defaults(fn=cmd_tcp_sink)
    p = sub.add_parser("tcp-send"); p.add_argument("--dest", required=True); p.add_argument("--seconds", type=float, default=5.0)
    p.set_defaults(fn=cmd_tcp_send)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
