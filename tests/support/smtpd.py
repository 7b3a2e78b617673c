#!/usr/bin/python3
"""A private SMTP server for Postroom's tests (driven by tests/support/smtpd.rs).

Built on Debian's python3-aiosmtpd; run it with /usr/bin/python3 (Debian's interpreter,
where that package lives). One process, three listeners on 127.0.0.1:

  submission  plain TCP with STARTTLS; STARTTLS before AUTH, AUTH (PLAIN, LOGIN) before MAIL
  smtps       implicit TLS; AUTH before MAIL
  open        plain, no TLS, no AUTH (a relay on a trusted LAN)

Usage:
  smtpd.py --spool DIR --users FILE --cert PEM --key PEM
           [--submission PORT] [--smtps PORT] [--open PORT]

A port of 0 (the default) lets the kernel pick a free one. When every listener is bound,
one JSON line {"submission": P, "smtps": P, "open": P} is printed on stdout; nothing else
is ever written there. When stdin is a pipe, the server exits at its EOF (the test
process died or dropped its handle); otherwise it runs until killed.

Files in the spool dir:
  NNNNNN.eml      each accepted message: the DATA bytes as received after dot-unstuffing
                  (CRLF kept, nothing added)
  NNNNNN.json     its envelope, written last (tmp + rename): a reader that sees it can
                  read the .eml
  transcript.log  every line received and sent, per session (see `Transcript`)
  fault.json      optional fault injection, read at every stage (see `Faults`)
  routes.json     optional {"lower-cased recipient": "/path/to/Maildir"}: an accepted
                  message is also delivered there (tmp/ then rename into new/)
The users file is {"user": "password", ...}, read again at every AUTH.
"""

import argparse
import asyncio
import json
import logging
import os
import socket
import ssl
import stat
import sys
import time
import warnings

try:
    from aiosmtpd.smtp import MISSING, SMTP, AuthResult
except ImportError as e:  # pragma: no cover - reported by the Rust harness
    print(
        f"smtpd.py: cannot import aiosmtpd ({e}); install the Debian package "
        "python3-aiosmtpd and run this with /usr/bin/python3",
        file=sys.stderr,
    )
    sys.exit(3)

HOSTNAME = "smtpd.postroom.test"
LISTENERS = ("submission", "smtps", "open")


def read_json(path):
    """The parsed file, or None when it is absent (or unreadable: reported on stderr)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        print(f"smtpd.py: ignoring {path}: {e}", file=sys.stderr)
        return None


def write_atomic(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def show(data):
    """One transcript line: UTF-8 as text, control characters and bad bytes as \\xNN."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    return "".join(
        c if (" " <= c and c != "\x7f") or c == "\t" else f"\\x{ord(c):02x}" for c in text
    )


class Transcript:
    """transcript.log: `SSSS LISTENER C: line` for what the client sent, `S:` for our
    replies, `*` for events (connect, TLS, faults, accepted messages, close). Line ends
    are stripped; any other control character shows as \\xNN, so a CR or NUL smuggled
    into a command stays visibly inside that one line. DATA content is not copied (one
    `C: <DATA ...>` summary line instead); a command line over aiosmtpd's limit is
    discarded by aiosmtpd unread and shows only as its 500 reply."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, sid, listener, kind, text):
        self.f.write(f"{sid:04d} {listener} {kind} {show(text)}\n")


class Faults:
    """fault.json, read at every stage:
      {"at": "connect"|"mail"|"rcpt"|"data", "reply": "451 4.3.0 ..."}
          answer that reply at that stage instead of going on ("connect": greet with it
          and close; "data": after the whole content was received, nothing stored)
      {"at": STAGE, "drop": true [, "deliver": true]}
          close the connection at that stage without a reply ("data": after the content
          was received; with "deliver" the message is stored first, as when a server
          delivered but the connection broke before its 250)
      {"down": true}   close every new connection at once, before any greeting
    "count": N applies the fault to the next N matching events only (the file is
    rewritten with the count decremented; 0 = spent)."""

    def __init__(self, path):
        self.path = path

    def take(self, stage):
        f = read_json(self.path)
        if not isinstance(f, dict):
            return None
        if f.get("down"):
            if stage != "connect":
                return None
        elif f.get("at") != stage:
            return None
        count = f.get("count")
        if count is not None:
            if count <= 0:
                return None
            f["count"] = count - 1
            write_atomic(self.path, json.dumps(f).encode())
        return f


class Server:
    """State shared by every session of the process (one asyncio thread: no locks)."""

    def __init__(self, args):
        self.spool = args.spool
        self.users_path = args.users
        self.transcript = Transcript(os.path.join(self.spool, "transcript.log"))
        self.faults = Faults(os.path.join(self.spool, "fault.json"))
        self.routes_path = os.path.join(self.spool, "routes.json")
        self.sessions = 0
        existing = [n for n in os.listdir(self.spool) if n.endswith(".json") and n[:6].isdigit()]
        self.seq = len(existing)
        self.maildir_seq = 0

    def authenticate(self, smtp, session, envelope, mechanism, auth_data):
        users = read_json(self.users_path) or {}
        try:
            login = auth_data.login.decode("utf-8")
            password = auth_data.password.decode("utf-8")
        except (AttributeError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False)
        if login in users and users[login] == password:
            smtp.authed_user = login
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd then answers 535 (the default handled=True sends nothing).
        return AuthResult(success=False, handled=False)

    def store(self, smtp, envelope):
        self.seq += 1
        name = f"{self.seq:06d}"
        data = envelope.original_content
        write_atomic(os.path.join(self.spool, name + ".eml"), data)
        meta = {
            "seq": self.seq,
            "session": smtp.sid,
            "listener": smtp.listener,
            # aiosmtpd keeps the null reverse-path as the string "<>".
            "mail_from": "" if envelope.mail_from == "<>" else envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "auth_user": smtp.authed_user,
            "tls": smtp.tls,
            "helo": smtp.session.host_name,
            "smtputf8": bool(envelope.smtp_utf8),
        }
        routes = read_json(self.routes_path) or {}
        delivered = []
        for rcpt in envelope.rcpt_tos:
            maildir = routes.get(rcpt.lower())
            if maildir:
                delivered.append(self.deliver(maildir, meta["mail_from"], rcpt, data))
        meta["maildir"] = delivered
        write_atomic(os.path.join(self.spool, name + ".json"), json.dumps(meta).encode())
        return name

    def deliver(self, maildir, mail_from, rcpt, data):
        """Like a local delivery agent: Return-Path and Delivered-To on top, written to
        tmp/ and renamed into new/ under a unique name."""
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.maildir_seq += 1
        unique = f"{int(time.time())}.P{os.getpid()}Q{self.maildir_seq}.{socket.gethostname()}"
        head = f"Return-Path: <{mail_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
        tmp = os.path.join(maildir, "tmp", unique)
        with open(tmp, "wb") as f:
            f.write(head + data)
        new = os.path.join(maildir, "new", unique)
        if os.geteuid() == 0:
            # Dovecot's mail user must own what it finds in its Maildir.
            st = os.stat(os.path.join(maildir, "new"))
            os.chown(tmp, st.st_uid, st.st_gid)
        os.rename(tmp, new)
        return new


class Handler:
    """aiosmtpd hooks: faults at MAIL/RCPT/DATA, storing accepted messages."""

    def __init__(self, server):
        self.server = server

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        return await smtp.fault("mail")

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        return await smtp.fault("rcpt")

    async def handle_DATA(self, smtp, session, envelope):
        smtp.note(f"C: <DATA {len(envelope.original_content)} bytes>")
        f = self.server.faults.take("data")
        if f and f.get("drop"):
            if f.get("deliver"):
                name = self.server.store(smtp, envelope)
                smtp.note(f"* accepted as {name}")
            smtp.drop("data")
        if f and f.get("reply"):
            smtp.note("* fault at data: reply")
            return f["reply"]
        name = self.server.store(smtp, envelope)
        smtp.note(f"* accepted as {name}")
        return f"250 2.0.0 OK queued as {name}"


class Session(SMTP):
    # What Postfix and most servers send (aiosmtpd's own are "User Name\0", "Password\0").
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, server, listener, **kw):
        server.sessions += 1
        self.server = server
        self.sid = server.sessions
        self.listener = listener
        self.tls = listener == "smtps"
        # Not `auth_user`: aiosmtpd offers every `auth_*` attribute as an AUTH mechanism.
        self.authed_user = None
        super().__init__(Handler(server), **kw)

    def note(self, line):
        kind, _, text = line.partition(" ")
        self.server.transcript.write(self.sid, self.listener, kind, text)

    # -- transcript ------------------------------------------------------------------

    def _client_connected_cb(self, reader, writer):
        super()._client_connected_cb(reader, writer)
        readuntil, readline = reader.readuntil, reader.readline

        def client_line(line):
            if line.endswith(b"\r\n"):
                line = line[:-2]
            elif line.endswith(b"\n"):
                line = line[:-1]
            self.server.transcript.write(self.sid, self.listener, "C:", line)

        async def logged_readuntil(separator=b"\n"):
            line = await readuntil(separator)
            # DATA content is read with b"\r\n"; commands with the default b"\n".
            if separator == b"\n":
                client_line(line)
            return line

        async def logged_readline():
            line = await readline()
            client_line(line)
            return line

        reader.readuntil = logged_readuntil
        reader.readline = logged_readline

    async def push(self, status):
        self.server.transcript.write(self.sid, self.listener, "S:", status)
        await super().push(status)

    def connection_made(self, transport):
        starttls = self.transport is not None and self._original_transport is not None
        super().connection_made(transport)
        if starttls:
            self.tls = True
            self.authed_user = None
            self.note(f"* TLS established ({self.tls_details(transport)})")
        else:
            peer = transport.get_extra_info("peername")
            extra = f" TLS ({self.tls_details(transport)})" if self.tls else ""
            self.note(f"* connect from {peer[0]}:{peer[1]}{extra}")

    @staticmethod
    def tls_details(transport):
        obj = transport.get_extra_info("ssl_object")
        if obj is None:
            return "?"
        return f"{obj.version()} {obj.cipher()[0]}"

    def connection_lost(self, error):
        self.note("* closed" + (f" ({error})" if error else ""))
        super().connection_lost(error)

    # -- faults ----------------------------------------------------------------------

    def drop(self, stage):
        self.note(f"* fault at {stage}: dropping the connection without a reply")
        self.transport.abort()
        # Unwinds smtp_DATA/MAIL/RCPT before they push a reply; aiosmtpd's client loop
        # treats it as a lost connection.
        raise asyncio.CancelledError()

    async def fault(self, stage):
        f = self.server.faults.take(stage)
        if not f:
            return MISSING
        if f.get("drop"):
            self.drop(stage)
        if f.get("reply"):
            self.note(f"* fault at {stage}: reply")
            return f["reply"]
        return MISSING

    async def _handle_client(self):
        f = self.server.faults.take("connect")
        if f and f.get("down"):
            self.note("* fault: down, closing without a greeting")
            self.transport.close()
            return
        if f and f.get("drop"):
            self.note("* fault at connect: closing without a greeting")
            self.transport.close()
            return
        if f and f.get("reply"):
            self.note("* fault at connect: greeting with the fault reply, then closing")
            await self.push(f["reply"])
            self.transport.close()
            return
        await super()._handle_client()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spool", required=True)
    p.add_argument("--users", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    for name in LISTENERS:
        p.add_argument(f"--{name}", type=int, default=0)
    return p.parse_args()


async def main():
    args = parse_args()
    loop = asyncio.get_running_loop()
    server = Server(args)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)

    common = dict(
        hostname=HOSTNAME,
        ident="Postroom test smtpd (aiosmtpd)",
        enable_SMTPUTF8=True,
        authenticator=server.authenticate,
        loop=loop,
    )
    settings = {
        "submission": dict(
            tls_context=ctx, require_starttls=True, auth_required=True, auth_require_tls=True
        ),
        # aiosmtpd only knows TLS it started itself (STARTTLS): on the implicit-TLS
        # listener auth_require_tls=True would refuse AUTH forever.
        "smtps": dict(auth_required=True, auth_require_tls=False),
        # No TLS context and auth_require_tls: AUTH is never offered.
        "open": dict(auth_required=False, auth_require_tls=True),
    }
    ports = {}
    for name in LISTENERS:

        def factory(name=name):
            return Session(server, name, **common, **settings[name])

        srv = await loop.create_server(
            factory,
            "127.0.0.1",
            getattr(args, name),
            ssl=ctx if name == "smtps" else None,
        )
        ports[name] = srv.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)

    if stat.S_ISFIFO(os.fstat(0).st_mode):
        await loop.run_in_executor(None, sys.stdin.buffer.read)
    else:
        await asyncio.Event().wait()


if __name__ == "__main__":
    # aiosmtpd warns on every implicit-TLS session that AUTH without STARTTLS is unsafe.
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    os._exit(0)
