"""Signing identities for C2PA manifests: make one that c2pa accepts, and explain any that it refuses.

c2pa refuses most certificates with the same message, "the certificate is invalid". ``doctor``
checks every requirement itself and says, in plain words, which one fails. ``init`` makes a local
identity that passes all of them: root CA -> intermediate CA -> end entity, on P-256.

Private keys are written with mode 0600 and never printed or logged.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from . import paths
from .errors import UsageError

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
# EKUs the C2PA specification accepts on a claim signer (section 14.5.1, certificate profile).
ACCEPTED_EKUS = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    DOCUMENT_SIGNING: "documentSigning",
    C2PA_CLAIM_SIGNING: "c2pa claimSigning",
}
_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def default_dir() -> Path:
    """Where ``keys init`` stores the local identity: $RIGHTSMETA_IDENTITY, else the XDG config dir."""
    return paths.identity()


@dataclass(frozen=True)
class Identity:
    """A certificate chain (end entity first, no root) and its private key, as PEM."""

    chain_pem: bytes
    key_pem: bytes = field(repr=False)  # never shown in reprs, logs or reports
    algorithm: str = "ES256"
    root_pem: bytes | None = None  # trust anchor for the local identity, if known

    @classmethod
    def load(cls, cert: str | os.PathLike[str], key: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Identity:
        chain_pem = Path(cert).read_bytes()
        key_pem = Path(key).read_bytes()
        report = doctor(chain_pem, key_pem)
        if not report.ok:
            raise UsageError("the signing certificate will be refused by c2pa:\n" + report.render())
        return cls(chain_pem, key_pem, report.algorithm or "ES256", Path(root).read_bytes() if root else None)

    @classmethod
    def configured(cls, cert: str | None = None, key: str | None = None) -> Identity | None:
        """--cert/--key, else $RIGHTSMETA_CERT/$RIGHTSMETA_KEY, else the local identity; None if none."""
        found = paths.signing_files(cert, key)
        return cls.load(*found) if found else None


def load_identity(folder: str | os.PathLike[str] | None) -> Identity | None:
    """The signing identity kept in ``folder`` (serve's and ui's --identity, loaded by each server
    worker), None while it holds none; raises UsageError or OSError when it cannot be used."""
    found = paths.identity_files(folder) if folder else None
    return Identity.load(*found) if found else None


# --- making a local identity -------------------------------------------------------------


def _name(common: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ])


def _certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None,
    days: int,
    issuer_public: ec.EllipticCurvePublicKey,
) -> x509.Certificate:
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]), critical=False
        )
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_identity(holder: str = "rightsmeta user", *, days: int = 3650) -> Identity:
    """A fresh local chain that c2pa accepts: root -> intermediate (pathlen 0) -> end entity."""
    org = holder
    root_key = ec.generate_private_key(ec.SECP256R1())
    mid_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{holder} local root CA", org)
    mid_name = _name(f"{holder} local signing CA", org)
    root = _certificate(root_name, root_key.public_key(), root_name, root_key, ca=True, path_length=1,
                        days=days + 365, issuer_public=root_key.public_key())
    mid = _certificate(mid_name, mid_key.public_key(), root_name, root_key, ca=True, path_length=0,
                       days=days + 180, issuer_public=root_key.public_key())
    leaf = _certificate(_name(holder, org), leaf_key.public_key(), mid_name, mid_key, ca=False, path_length=None,
                        days=days, issuer_public=mid_key.public_key())
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Identity(_pem(leaf) + _pem(mid), key_pem, "ES256", _pem(root))


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the first byte: no window in which another user could read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def save_identity(identity: Identity, folder: Path, *, force: bool = False) -> dict[str, Path]:
    """Store the identity: chain.pem and root.pem (public), signer.key (0600)."""
    paths = {"chain": folder / "chain.pem", "key": folder / "signer.key", "root": folder / "root.pem"}
    if not force and any(p.exists() for p in paths.values()):
        raise UsageError(f"an identity already exists in {folder}; use --force to replace it")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths["chain"].write_bytes(identity.chain_pem)
    if identity.root_pem:
        paths["root"].write_bytes(identity.root_pem)
    _write_private(paths["key"], identity.key_pem)
    return paths


# --- explaining a certificate ------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    algorithm: str | None = None
    subject: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def render(self) -> str:
        return "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            assert cert.signature_hash_algorithm is not None
            pad = cert.signature_algorithm_parameters
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       pad if isinstance(pad, padding.PSS) else padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, AssertionError):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def _algorithm(cert: x509.Certificate) -> tuple[str | None, str]:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _CURVES.get(key.curve.name)
        return alg, f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return ("PS256" if key.key_size >= 2048 else None), f"RSA {key.key_size} bits"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", "Ed25519"
    return None, type(key).__name__


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def doctor(chain_pem: bytes, key_pem: bytes | None = None, *, now: _dt.datetime | None = None) -> DoctorReport:
    """Check a chain (and its key) against everything c2pa requires of a claim signer."""
    report = DoctorReport()
    try:
        chain: Sequence[x509.Certificate] = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        report.add("certificate", False, f"no PEM certificate could be read ({exc})")
        return report
    leaf = chain[0]
    report.subject = leaf.subject.rfc4514_string()
    now = now or _dt.datetime.now(_dt.UTC)

    alg, described = _algorithm(leaf)
    report.algorithm = alg
    report.add("algorithm", alg is not None,
               f"{described}" + ("" if alg else ": c2pa signs with EC P-256/384/521, RSA >= 2048 bits (PSS) or Ed25519"))

    basic = _extension(leaf, x509.BasicConstraints)
    is_ca = bool(basic and basic.value.ca)  # type: ignore[attr-defined]
    report.add("end entity", not is_ca,
               "CA:TRUE on the signing certificate; the signer must be an end entity (CA:FALSE)" if is_ca
               else "the first certificate is an end entity")

    self_signed = _self_signed(leaf)
    report.add("issuer", not self_signed,
               "the end entity is self-signed; c2pa wants it issued by a CA (rightsmeta keys init makes such a chain)"
               if self_signed else f"issued by {leaf.issuer.rfc4514_string()}")

    usage = _extension(leaf, x509.KeyUsage)
    signs = bool(usage and usage.value.digital_signature)  # type: ignore[attr-defined]
    report.add("key usage", signs, "digitalSignature is set" if signs
               else "the key usage extension lacks digitalSignature" if usage else "no key usage extension; digitalSignature is required")

    eku = _extension(leaf, x509.ExtendedKeyUsage)
    if eku is None:
        report.add("extended key usage", False, "no extended key usage; c2pa requires emailProtection or documentSigning")
    else:
        found = list(eku.value)  # type: ignore[call-overload]
        accepted = [ACCEPTED_EKUS[o] for o in found if o in ACCEPTED_EKUS]
        report.add("extended key usage", bool(accepted),
                   f"{', '.join(accepted)}" if accepted else
                   f"{', '.join(o.dotted_string for o in found)} is not one c2pa accepts (emailProtection, documentSigning)")

    # Measured: c2pa refuses an end entity without this extension, with no reason given.
    aki = _extension(leaf, x509.AuthorityKeyIdentifier)
    report.add("authority key identifier", aki is not None, "present" if aki
               else "the end entity has no Authority Key Identifier extension, which c2pa requires")

    orgs = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    report.add("organization", bool(orgs), f"O={orgs[0].value!r}" if orgs
               else "the subject has no Organization (O) field, which c2pa requires")

    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start:
        report.add("validity", False, f"not valid yet: starts {start:%Y-%m-%d %H:%M} UTC")
    elif now > end:
        report.add("validity", False, f"expired on {end:%Y-%m-%d %H:%M} UTC")
    else:
        report.add("validity", True, f"valid until {end:%Y-%m-%d}")

    if len(chain) == 1:
        report.add("chain", not self_signed, "only the end entity: add the intermediate CA certificate(s) after it"
                   if not self_signed else "only a self-signed certificate")
    else:
        order_ok = all(chain[i].issuer == chain[i + 1].subject and _signed_by(chain[i], chain[i + 1])
                       for i in range(len(chain) - 1))
        root_included = _self_signed(chain[-1])
        if not order_ok:
            report.add("chain", False, "wrong order: each certificate must be followed by its issuer, end entity first")
        elif root_included:
            report.add("chain", False, "the root CA is included; give the end entity and intermediates only, "
                                       "and use the root as a trust anchor (--trust-anchors)")
        else:
            report.add("chain", True, f"{len(chain)} certificates, each signed by the next")

    if key_pem is not None:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            report.add("private key", False, f"cannot be read: {_key_trouble(key_pem)}")
        else:
            pub = serialization.PublicFormat.SubjectPublicKeyInfo
            enc = serialization.Encoding.DER
            match = key.public_key().public_bytes(enc, pub) == leaf.public_key().public_bytes(enc, pub)
            report.add("private key", match, "matches the certificate" if match
                       else "does not match the end-entity certificate")
    return report


def _key_trouble(key_pem: bytes) -> str:
    """Why a --key file gives no private key, in words that say which file to give instead (never
    its contents)."""
    if b"ENCRYPTED" in key_pem:  # PKCS#8 "ENCRYPTED PRIVATE KEY", or a legacy "Proc-Type: 4,ENCRYPTED"
        return "the key is encrypted (password-protected); give an unencrypted PEM key (openssl pkey -in KEY -out NEW)"
    if b"-----BEGIN CERTIFICATE-----" in key_pem and b"PRIVATE KEY-----" not in key_pem:
        return "the file holds a certificate, not a private key (give the key, e.g. signer.key, as --key)"
    if b"PRIVATE KEY-----" in key_pem:
        return "the PEM private key is damaged or of a kind cryptography cannot load"
    return "the file holds no PEM private key"


def trial_sign(identity: Identity) -> str | None:
    """Sign a 1x1 PNG in memory with c2pa itself: None if accepted, else c2pa's reason."""
    import io

    import c2pa
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (1, 1)).save(png, "PNG")
    alg = getattr(c2pa.C2paSigningAlg, identity.algorithm.upper(), None)
    if alg is None:
        return f"c2pa has no signing algorithm {identity.algorithm}"
    manifest = {"claim_generator_info": [{"name": "rightsmeta keys doctor"}], "assertions": []}
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, identity.chain_pem, identity.key_pem, None))
        with signer, c2pa.Builder(manifest) as builder:
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            builder.sign(signer, "image/png", io.BytesIO(png.getvalue()), io.BytesIO())
    except c2pa.C2paError as exc:
        return str(exc)
    return None


def check(chain_pem: bytes, key_pem: bytes | None = None) -> DoctorReport:
    """``doctor``, plus a trial signature by c2pa itself when the key is given and all else passed."""
    report = doctor(chain_pem, key_pem)
    if key_pem is not None and report.ok:
        refused = trial_sign(Identity(chain_pem, key_pem, report.algorithm or "ES256"))
        report.add("c2pa trial signature", refused is None, "c2pa signed a test image with it" if refused is None
                   else f"c2pa refused it: {refused}")
    return report
