#!/usr/bin/env python3
"""SMTP sink for botwatch's notifier tests.

Listens on 127.0.0.1:<port> (aiosmtpd) and writes every accepted message into the spool
directory as <n>.eml (raw bytes as received) and <n>.json (envelope, decoded headers and
decoded text body), so tests in any language can assert on what arrived.

    python3 scripts/smtp-sink.py --port 2525 --spool /tmp/botwatch-smtp-spool
"""
import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import threading
import time

from aiosmtpd.controller import Controller


class Spool:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.lock = threading.Lock()
        self.counter = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        try:
            part = msg.get_body(preferencelist=("plain",))
            body = part.get_content() if part is not None else ""
        except Exception as e:  # keep the raw file even if decoding fails
            body = f"<undecodable: {e}>"
        doc = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {k: str(v) for k, v in msg.items()},
            "body": body,
        }
        with self.lock:
            name = f"{time.time_ns()}-{os.getpid()}-{next(self.counter)}"
        # Write to a temporary name and rename, so readers never see half a file.
        for ext, data in ((".eml", raw), (".json", json.dumps(doc, ensure_ascii=False).encode())):
            tmp = os.path.join(self.directory, "." + name + ext + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(self.directory, name + ext))
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--spool", required=True)
    args = ap.parse_args()
    controller = Controller(Spool(args.spool), hostname=args.host, port=args.port, decode_data=False)
    controller.start()
    print(f"smtp-sink listening on {args.host}:{args.port}, spool {args.spool}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
