"""Signed model versions: OpenSSF model-signing with a project key, no network.

A signed package holds one more file, ``shipyard-model.sig`` (a Sigstore bundle over every other
file of the package: the model file and ``shipyard-model.json``), so the version's package id
covers the signature too. ``verify_package`` runs wherever a version is loaded (``models.load_model``:
gateway, gates, ``models load``): a changed byte, a package re-assembled around someone else's
signature, or a signature made with a key not on the accepted list is refused with UnsafeModel.

Keys: ``supply.signing_key`` (an EC private key in PEM) signs; ``supply.verify_keys`` (public keys
in PEM) plus the public half of the signing key are accepted. To rotate, add the new public key to
``verify_keys``, switch ``signing_key`` to the new private key, and drop the old public key once
no version signed with it is still served (docs/guide/security.md).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import InputError, UnsafeModel, require_extra

SIG_FILE = "shipyard-model.sig"


@dataclass(frozen=True)
class Keys:
    """The public keys (PEM bytes) a loaded version's signature may verify with; ``require`` refuses unsigned ones."""

    public: tuple[bytes, ...] = ()
    require: bool = False


_by_project: dict[tuple[str, int], Keys] = {}


def keys_from_settings(settings: Any, root: Path) -> Keys:
    """The accepted public keys of a ``supply`` section, paths relative to the project ``root``."""
    public = [_read(Path(root) / p, "supply.verify_keys") for p in settings.verify_keys]
    if settings.signing_key:
        public.append(public_key(_read(Path(root) / settings.signing_key, "supply.signing_key")))
    return Keys(tuple(dict.fromkeys(public)), settings.require_signature)


def current_keys() -> Keys:
    """The keys of the project found from the working directory, else none."""
    from shipyard.supply.registration import current_settings

    settings, root = current_settings()
    if root is None:
        return Keys()
    stamp = (str(root), id(settings))
    if stamp not in _by_project:   # key files are read once per project settings, not on every load
        _by_project[stamp] = keys_from_settings(settings, root)
    return _by_project[stamp]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{what}: cannot read key file {path} ({exc.strerror})",
                         hint="generate one: openssl ecparam -name prime256v1 -genkey -noout -out model-signing.pem") from None


def public_key(private_pem: bytes) -> bytes:
    """The PEM public key of an EC private key in PEM."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(public_pem: bytes) -> str:
    """sha256 of the public key, as recorded with a signed version."""
    return "sha256:" + hashlib.sha256(public_pem.strip()).hexdigest()[:32]


def sign_package(objects: Any, model_oid: str, key_path: Path) -> tuple[str, dict[str, Any]]:
    """Sign a stored package with the private key at ``key_path``; returns (new package id, facts)."""
    require_extra("model_signing", "supply")
    from model_signing import signing

    from shipyard.hashing import FileEntry, Manifest

    private = _read(key_path, "supply.signing_key")
    manifest = objects.manifest(model_oid)
    entries = [e for e in manifest.entries if e.path != SIG_FILE]
    with tempfile.TemporaryDirectory(prefix="shipyard-sign-") as tmp:
        folder, sig = Path(tmp) / "model", Path(tmp) / "model.sig"
        objects.checkout(model_oid, folder)   # every file verified against its hash
        (folder / SIG_FILE).unlink(missing_ok=True)   # signing again: the old signature is not signed over
        signing.Config().use_elliptic_key_signer(private_key=key_path).sign(folder, sig)
        bundle = sig.read_bytes()
    sig_oid = objects.put_bytes(bundle)
    signed = Manifest(tuple(sorted([*entries, FileEntry(SIG_FILE, sig_oid, len(bundle))], key=lambda e: e.path)))
    return objects.put_manifest(signed), {"file": SIG_FILE, "key": fingerprint(public_key(private)),
                                          "method": "model-signing (elliptic key)"}


def verify_package(objects: Any, model_oid: str, keys: Keys | None = None, *, what: str | None = None) -> dict[str, Any] | None:
    """Verify a package's signature; None when unsigned (refused when keys require one)."""
    keys = keys if keys is not None else current_keys()
    what = what or model_oid
    manifest = objects.manifest(model_oid)
    sig_entry = next((e for e in manifest.entries if e.path == SIG_FILE), None)
    if sig_entry is None:
        if keys.require:
            raise UnsafeModel(f"{what} is not signed, and supply.require_signature is set; refusing to load it",
                              hint="register it again with supply.signing_key configured")
        return None
    if not keys.public:
        raise UnsafeModel(f"{what} is signed, but no public key is configured to verify it; refusing to load it",
                          hint="set supply.verify_keys (or supply.signing_key) in shipyard.yaml")
    require_extra("model_signing", "supply")
    from model_signing import verifying

    with tempfile.TemporaryDirectory(prefix="shipyard-verify-") as tmp:
        folder, sig = Path(tmp) / "model", Path(tmp) / "model.sig"
        objects.checkout(model_oid, folder)   # every file verified against its hash
        (folder / SIG_FILE).rename(sig)   # the signature is over every other file
        errors = []
        for index, pem in enumerate(keys.public):
            key_file = Path(tmp) / f"key{index}.pub"
            key_file.write_bytes(pem)
            try:
                verifying.Config().use_elliptic_key_verifier(public_key=key_file).verify(folder, sig)
            except Exception as exc:   # the library raises ValueError and others; any failure refuses
                errors.append(_why(exc))
                continue
            return {"verified": True, "key": fingerprint(pem)}
    raise UnsafeModel(f"{what}: the signature does not verify with any of {len(keys.public)} accepted keys "
                      f"({'; '.join(dict.fromkeys(errors))}); refusing to load it",
                      hint="the model bytes or the signature were changed after signing; register the model again "
                           "from its source, and check who can write to the object store")


def _why(exc: Exception) -> str:
    """model-signing's reason in a line: which file changed, or the library's first words."""
    text = str(exc)
    changed = re.findall(r"Hash mismatch for '([^']+)'", text.replace("\\'", "'"))
    if changed:
        return f"{', '.join(changed)} differs from what was signed"
    return f"{type(exc).__name__}: {text[:160]}"
