"""A small QMP client (one command at a time, events skipped)."""

import json
import socket
import time
from typing import Any, Dict, Optional


class QMPError(RuntimeError):
    pass


class QMP:
    def __init__(self, path: str, connect_timeout: float = 30.0) -> None:
        deadline = time.monotonic() + connect_timeout
        last = None  # type: Optional[Exception]
        while True:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(connect_timeout)
                self._sock.connect(path)
                break
            except OSError as exc:
                self._sock.close()
                last = exc
                if time.monotonic() > deadline:
                    raise QMPError("cannot connect to QMP socket %s: %s" % (path, last))
                time.sleep(0.2)
        self._buf = b""
        greeting = self._read_msg(connect_timeout)
        if "QMP" not in greeting:
            raise QMPError("unexpected QMP greeting: %r" % greeting)
        self.execute("qmp_capabilities")

    def _read_msg(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QMPError("timed out after %.0f s waiting for QMP" % timeout)
            self._sock.settimeout(remaining)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line.decode())

    def execute(self, command: str, arguments: Optional[Dict[str, Any]] = None,
                timeout: float = 60.0) -> Any:
        msg = {"execute": command}  # type: Dict[str, Any]
        if arguments is not None:
            msg["arguments"] = arguments
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_msg(max(0.1, deadline - time.monotonic()))
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QMPError("%s: %s" % (command, reply["error"].get("desc", reply["error"])))
            # an asynchronous event: keep waiting for our reply

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
