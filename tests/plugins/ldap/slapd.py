"""A real OpenLDAP server for the tests: slapd on a free loopback port, in a temp directory.

Each :class:`Slapd` gets its own generated ``slapd.conf`` (mdb backend, memberof overlay,
core/cosine/nis/inetorgperson schemas, TLS with a throw-away CA), listens on ``ldap://``
(StartTLS offered) and ``ldaps://``, and is stopped by its PID. Nothing here touches a system
slapd or ``/etc/ldap/slapd.d``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")


def missing_tools() -> list[str]:
    """The programs the fixture needs that this machine lacks."""
    wanted = {
        "slapd": SLAPD,
        "ldapadd": "ldapadd",
        "slappasswd": "slappasswd",
        "openssl": "openssl",
    }
    return [name for name, prog in wanted.items() if shutil.which(prog) is None]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


# -- certificates ------------------------------------------------------------------------------


@attrs.frozen
class Pki:
    """A CA, a server certificate it signed (for 127.0.0.1 and localhost), and an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _run(
        [
            "openssl", "req", "-x509", "-new", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN=ds01 test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    """Generate the certificates with ``openssl`` (EC keys: instant, and GnuTLS reads them)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _make_ca(directory, "ca")
    other_ca, _ = _make_ca(directory, "other-ca")
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _run(
        [
            "openssl", "req", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost",
        ]
    )  # fmt: skip
    _run(
        [
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext),
        ]
    )  # fmt: skip
    return Pki(ca=ca, server_cert=cert, server_key=key, other_ca=other_ca)


# -- the server --------------------------------------------------------------------------------


def slapd_conf(directory: Path, pki: Pki, admin_hash: str) -> str:
    """The configuration of the recipe, plus TLS and an ACL that makes reading need a bind."""
    schemas = "\n".join(
        f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "nis", "inetorgperson")
    )
    return f"""{schemas}
pidfile  {directory}/slapd.pid
argsfile {directory}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload memberof
TLSCACertificateFile {pki.ca}
TLSCertificateFile {pki.server_cert}
TLSCertificateKeyFile {pki.server_key}
database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {admin_hash}
directory {directory}/db
index objectClass eq
index uid,memberUid,cn,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
overlay memberof
"""


class Slapd:
    """One slapd process; :meth:`start` and :meth:`stop` may be called again (same ports)."""

    def __init__(self, directory: Path, pki: Pki):
        self.directory = directory
        self.pki = pki
        self.port = free_port()
        self.tls_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (directory / "db").mkdir(parents=True, exist_ok=True)
        admin_hash = _run(["slappasswd", "-s", ADMIN_PASSWORD]).stdout.strip()
        self.conf = directory / "slapd.conf"
        self.conf.write_text(slapd_conf(directory, pki, admin_hash))
        _run([SLAPD, "-T", "test", "-u", "-f", str(self.conf)])

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start slapd in the foreground (``-d 0``) and wait until it accepts connections."""
        log = (self.directory / "slapd.log").open("ab")
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(self.conf), "-h", f"{self.uri}/ {self.ldaps_uri}/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"slapd exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"slapd did not listen on {self.uri} within {timeout}s")

    def stop(self) -> None:
        """Stop slapd by its PID (SIGTERM, then SIGKILL after 5 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        path = self.directory / "slapd.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def ldapadd(self, ldif: str) -> None:
        """Load entries with the real ``ldapadd`` client, bound as the root DN."""
        _run(
            ["ldapadd", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            input=ldif,
        )

    def ldapmodify(self, ldif: str) -> None:
        """Apply an LDIF change (``changetype: modify`` / ``delete``) with ``ldapmodify``."""
        _run(
            ["ldapmodify", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            input=ldif,
        )


def person(uid: str, number: int) -> str:
    """An LDIF user entry (inetOrgPerson + posixAccount) with password ``<uid>pw``."""
    return f"""dn: uid={uid},{PEOPLE}
objectClass: inetOrgPerson
objectClass: posixAccount
uid: {uid}
cn: {uid.title()} Example
sn: Example
uidNumber: {number}
gidNumber: 5000
homeDirectory: /home/{uid.lower()}
userPassword: {uid.lower()}pw
"""


def group_of_names(cn: str, *members: str) -> str:
    """An LDIF groupOfNames; ``members`` are full DNs."""
    lines = "".join(f"member: {m}\n" for m in members)
    return f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}"


def posix_group(cn: str, gid: int, *member_uids: str) -> str:
    lines = "".join(f"memberUid: {m}\n" for m in member_uids)
    return f"dn: cn={cn},{GROUPS}\nobjectClass: posixGroup\ncn: {cn}\ngidNumber: {gid}\n{lines}"


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


#: The directory every test starts from:
#: - ``students`` (groupOfNames, mapped by DN): alice, bob, dave;
#: - ``researchers`` (posixGroup, mapped by cn): alice, Carol (mixed case), ghost (no such user);
#: - ``faculty`` (groupOfNames) holds the group ``professors`` (erin): nested;
#: - frank is in no group.
BASE_LDIF = "\n".join(
    [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
        f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: reader\nuserPassword: {READER_PASSWORD}\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        *(
            person(uid, 10001 + i)
            for i, uid in enumerate(["alice", "bob", "carol", "dave", "Erin", "frank"])
        ),
        group_of_names("students", user_dn("alice"), user_dn("bob"), user_dn("dave")),
        posix_group("researchers", 5000, "alice", "Carol", "ghost"),
        group_of_names("professors", user_dn("Erin")),
        group_of_names("faculty", f"cn=professors,{GROUPS}"),
    ]
)
