"""A compromised service (the unprivileged service user owns the state directory) swaps
control.sock for a socket of its own: a UI must refuse to talk to it (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from netns import require_root

from pxetui.control import ControlClient
from pxetui.doctor import engineargs

pytestmark = pytest.mark.root

SERVER = textwrap.dedent("""
    import os, socket, sys
    os.setgid(int(sys.argv[3])); os.setuid(int(sys.argv[2]))  # the unprivileged service user
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sys.argv[1])
    s.listen(1)
    print("ready", flush=True)
    s.settimeout(20)
    for _ in range(2):
        conn, _ = s.accept()
        conn.sendall(b'{"type": "Log", "message": "a made-up engine"}\\n')
        conn.close()
""")


def serve_as(path: Path, uid: int, gid: int) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", SERVER, str(path), str(uid), str(gid)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def test_a_ui_refuses_a_control_socket_served_by_another_user(tmp_path: Path) -> None:
    require_root()
    nobody = pwd.getpwnam("nobody")
    # A state directory the service user may write in, as pxetui's is.
    state = Path(tempfile.mkdtemp(prefix="pxetui-swap-"))
    try:
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        fake = state / "control.sock"
        p = serve_as(fake, nobody.pw_uid, nobody.pw_gid)
        try:
            with pytest.raises(ConnectionRefusedError, match=f"uid {nobody.pw_uid}"):
                asyncio.run(ControlClient.connect(fake))
            # The doctor's self-test runs the command line of the process on the socket, as
            # root: it refuses this one too, before reading anything of it.
            with pytest.raises(engineargs.NoEngine, match=f"uid {nobody.pw_uid}"):
                engineargs.self_test_command(fake)
        finally:
            p.kill()
            p.wait(timeout=10)
    finally:
        shutil.rmtree(state, ignore_errors=True)

    # The engine's own socket (root, like the UI) is accepted.
    real = tmp_path / "real.sock"

    async def own() -> str:
        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b'{"type": "Log", "message": "the engine"}\n')
            await writer.drain()

        server = await asyncio.start_unix_server(hello, str(real))
        try:
            client = await ControlClient.connect(real)
            async for ev in client.events():
                await client.close()
                return str(ev["message"])
            return ""
        finally:
            server.close()

    assert asyncio.run(own()) == "the engine"
