#!/usr/bin/env python3
"""A small, faithful stand-in for Python fedmsg 1.1.7's message crypto, for interop tests.

Real fedmsg cannot be installed where the tests run, so this re-implements exactly the
parts of it that decide wire compatibility, using only the standard library's ``json`` and
the ``cryptography`` package (Debian: python3-cryptography):

* ``fedmsg.encoding.dumps``: ``json.JSONEncoder(sort_keys=True, separators=(',', ':'))``
  (``ensure_ascii`` left at its default, True); ``fedmsg.encoding.loads`` = ``json.loads``.
* ``fedmsg.crypto.x509_ng.sign`` and ``_prep_crypto_msg`` (what ``fedmsg.crypto.x509``
  uses when cryptography is installed): ``crypto`` = ``x509`` set on the message first,
  RSA PKCS#1 v1.5 SHA-1 over ``dumps(message).encode('utf-8')``, the certificate
  re-serialised by cryptography as PEM, both base64'd and cut every 76 characters with
  ``\\n`` plus a final ``\\n``.
* ``fedmsg.crypto.validate`` (backend selection by the ``crypto`` field, then
  ``x509_ng.validate``), ``fedmsg.crypto.validate_signed_by``,
  ``fedmsg.crypto.strip_credentials`` and ``fedmsg.crypto.utils.validate_policy``.
* The certificate-chain check fedmsg delegates to pyOpenSSL (``X509Store`` holding the one
  CA, plus the CRL with ``CRL_CHECK | CRL_CHECK_ALL``) is re-implemented after OpenSSL's
  ``X509_verify_cert`` for a two-certificate chain, in OpenSSL's order: find the issuer
  (name, AKID/SKID, keyCertSign), the CA must be a CA, revocation for the leaf then the CA
  (CRL issuer, CRL signature, thisUpdate/nextUpdate, serial), then the trust anchor's dates,
  the leaf's signature by the CA and the leaf's dates. Not re-implemented (not needed by
  these tests): intermediates, unknown critical extensions, name constraints, policies,
  delta CRLs and CRL distribution-point scope.

Where fedmsg raises instead of returning False (e.g. undecodable base64, a non-string
``signature``, an unparsable certificate), the result says ``"raised": true``.

Usage (one JSON value per input line on stdin, one JSON object per output line):

  validate --ca CA [--crl CRL] [--policy JSON] [--nitpicky] [--signed-by CN] [--no-chain]
      in:  {"topic": <frame 0>, "body": <frame 1>}
      out: {"ok": bool, "reason": str|null, "detail": str, "cn": str|null,
            "topic_match": bool, "raised": bool}
      (--no-chain skips the CA/CRL checks: only for vectors whose CA is unknown.)
  sign --cert CRT --key KEY [--wire fedmsg|spaced|unicode]
      in:  an unsigned envelope (JSON object)
      out: {"ok": true, "body": <frame 1 text>, "canonical": <signed text>}
      --wire fedmsg (default): fedmsg.encoding.dumps of the signed dict, as fedmsg's
      publish sends it; spaced: json.dumps(msg) (default separators, dict order);
      unicode: as spaced with ensure_ascii=False (what a re-serialising relay might emit).
  canon
      in:  any JSON text
      out: {"ok": true, "canonical": fedmsg.encoding.dumps(json.loads(text))}
  reserialize
      in:  any JSON text
      out: {"ok": true, "text": json.dumps(json.loads(text)) with keys in reverse order}
"""

import argparse
import base64
import copy
import datetime
import json
import sys

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.backends import default_backend
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
except ImportError as exc:  # pragma: no cover
    sys.stderr.write('fedmsg_x509.py needs the cryptography package '
                     '(Debian: apt-get install python3-cryptography): %s\n' % exc)
    sys.exit(3)


# --------------------------------------------------------------------------- encoding

# fedmsg/encoding/__init__.py: encoder = FedMsgEncoder(sort_keys=True, separators=(',', ':'))
_encoder = json.JSONEncoder(sort_keys=True, separators=(',', ':'))
dumps = _encoder.encode
loads = json.loads


# --------------------------------------------------------------------------- signing

def _prep_crypto_msg(message):
    """fedmsg.crypto.x509_ng._prep_crypto_msg: cut at 76 characters, final newline."""
    signature = message['signature']
    certificate = message['certificate']
    sliced_signature, sliced_certificate = [], []
    for x in range(0, len(signature), 76):
        sliced_signature.append(signature[x:x + 76])
    for x in range(0, len(certificate), 76):
        sliced_certificate.append(certificate[x:x + 76])
    message['signature'] = u'\n'.join(sliced_signature) + u'\n'
    message['certificate'] = u'\n'.join(sliced_certificate) + u'\n'
    return message


_private_keys = {}


def _load_private_key(key_pem):
    # fedmsg reads the key file on every sign() call; loading an RSA key costs ~50 ms with
    # OpenSSL 3, so a batch caches it (the signature does not depend on it).
    if key_pem not in _private_keys:
        _private_keys[key_pem] = serialization.load_pem_private_key(
            data=key_pem, password=None, backend=default_backend())
    return _private_keys[key_pem]


def sign(message, key_pem, cert_pem):
    """fedmsg.crypto.x509_ng.sign, with the key and certificate file contents given."""
    message['crypto'] = 'x509'
    rsa_private = _load_private_key(key_pem)
    signature = rsa_private.sign(
        dumps(message).encode('utf-8'),
        padding.PKCS1v15(),
        hashes.SHA1(),
    )
    cert = x509.load_pem_x509_certificate(cert_pem, default_backend())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return _prep_crypto_msg(dict(list(message.items()) + [
        ('signature', base64.b64encode(signature).decode('ascii')),
        ('certificate', base64.b64encode(cert_pem).decode('ascii')),
    ]))


# --------------------------------------------------------------------------- validation

class Invalid(Exception):
    """Validation said False; `reason` is gilmsg's name for the same failure."""

    def __init__(self, reason, detail):
        Exception.__init__(self, detail)
        self.reason = reason
        self.detail = detail


def strip_credentials(message):
    """fedmsg.crypto.strip_credentials."""
    message = copy.deepcopy(message)
    for field in ['signature', 'certificate']:
        if field in message:
            del message[field]
    return message


def validate_policy(topic, signer, routing_policy, nitpicky=False):
    """fedmsg.crypto.utils.validate_policy."""
    if topic in routing_policy:
        if signer in routing_policy[topic]:
            return True
        raise Invalid('policy_denied', 'Authorization/routing_policy error.  '
                      'Topic %r.  Signer %r.' % (topic, signer))
    if nitpicky:
        raise Invalid('policy_denied', 'Authorization/routing_policy underspecified.')
    return True


def _utc(obj, name):
    aware = getattr(obj, name + '_utc', None)  # cryptography >= 42
    if aware is not None:
        return aware
    naive = getattr(obj, name)
    return None if naive is None else naive.replace(tzinfo=datetime.timezone.utc)


def _extension(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _verify_with(public_key, signature, data, hash_algorithm):
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
    else:
        raise InvalidSignature('unsupported issuer key type')


def _issued_by(cert, ca):
    """OpenSSL X509_check_issued: issuer name, AKID against SKID, keyCertSign."""
    if cert.issuer != ca.subject:
        return 'subject issuer mismatch'
    akid = _extension(cert, x509.AuthorityKeyIdentifier)
    skid = _extension(ca, x509.SubjectKeyIdentifier)
    if akid is not None:
        if akid.key_identifier is not None and skid is not None and akid.key_identifier != skid.digest:
            return 'authority and subject key identifier mismatch'
        if akid.authority_cert_serial_number is not None and akid.authority_cert_serial_number != ca.serial_number:
            return 'authority and issuer serial number mismatch'
    usage = _extension(ca, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        return 'key usage does not include certificate signing'
    return None


def _check_time(cert, now, what):
    if _utc(cert, 'not_valid_before') > now:
        raise Invalid('not_yet_valid', '%s is not yet valid' % what)
    if _utc(cert, 'not_valid_after') < now:
        raise Invalid('expired', '%s has expired' % what)


def _check_revocation(cert, ca, crl, now, what):
    """OpenSSL check_cert/check_crl for one certificate of the chain."""
    if crl.issuer != cert.issuer:
        raise Invalid('crl_invalid', 'unable to get certificate CRL (%s)' % what)
    if _utc(crl, 'last_update') > now:
        raise Invalid('not_yet_valid', 'CRL is not yet valid')
    next_update = _utc(crl, 'next_update')
    if next_update is not None and next_update < now:
        raise Invalid('expired', 'CRL has expired')
    usage = _extension(ca, x509.KeyUsage)
    if usage is not None and not usage.crl_sign:
        raise Invalid('crl_invalid', 'key usage does not include CRL signing')
    if not crl.is_signature_valid(ca.public_key()):
        raise Invalid('crl_invalid', 'CRL signature failure')
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        raise Invalid('revoked', 'certificate revoked (%s, serial %x)' % (what, cert.serial_number))


def _validate_signing_cert(ca_pem, cert_pem, crl_pem=None, now=None):
    """fedmsg.crypto.x509_ng._validate_signing_cert (pyOpenSSL X509Store) re-done.

    Raises Invalid where pyOpenSSL raises X509StoreContextError.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cert = x509.load_pem_x509_certificate(cert_pem, default_backend())
    ca = x509.load_pem_x509_certificate(ca_pem, default_backend())
    crl = x509.load_pem_x509_crl(crl_pem, default_backend()) if crl_pem else None

    # build_chain: the only trusted certificate must have issued the leaf.
    why = _issued_by(cert, ca)
    if why is not None:
        raise Invalid('unknown_ca', 'unable to get local issuer certificate (%s)' % why)
    # check_extensions: the issuer must be a CA.
    constraints = _extension(ca, x509.BasicConstraints)
    if constraints is not None and not constraints.ca:
        raise Invalid('unknown_ca', 'invalid CA certificate')
    if constraints is None and ca.version != x509.Version.v1:
        raise Invalid('unknown_ca', 'invalid CA certificate (no basicConstraints)')
    # check_revocation with CRL_CHECK | CRL_CHECK_ALL: every certificate of the chain.
    if crl is not None:
        _check_revocation(cert, ca, crl, now, 'leaf')
        _check_revocation(ca, ca, crl, now, 'CA')
    # internal_verify: the trust anchor's dates (its self-signature is not checked), then
    # the leaf's signature and dates.
    _check_time(ca, now, 'CA certificate')
    try:
        _verify_with(ca.public_key(), cert.signature, cert.tbs_certificate_bytes, cert.signature_hash_algorithm)
    except InvalidSignature:
        raise Invalid('unknown_ca', 'certificate signature failure')
    _check_time(cert, now, 'certificate')


def x509_validate(message, ca_pem, crl_pem, config, chain=True):
    """fedmsg.crypto.x509_ng.validate; returns the signer CN or raises Invalid."""
    for field in ['signature', 'certificate']:
        if field not in message:
            raise Invalid('malformed', 'No %s field found.' % field)
        if not isinstance(message[field], str):
            # fedmsg tries message[field].decode('utf-8'): AttributeError for non-bytes.
            message[field] = message[field].decode('utf-8')

    signature = base64.b64decode(message['signature'])
    certificate = base64.b64decode(message['certificate'])
    message = strip_credentials(message)

    if chain:
        _validate_signing_cert(ca_pem, certificate, crl_pem)

    crypto_certificate = x509.load_pem_x509_certificate(certificate, default_backend())
    try:
        crypto_certificate.public_key().verify(
            signature,
            dumps(message).encode('utf-8'),
            padding.PKCS1v15(),
            hashes.SHA1(),
        )
    except InvalidSignature:
        raise Invalid('bad_signature', 'message has an invalid signature')

    common_name = crypto_certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    common_name = common_name[0]
    routing_policy = config.get('routing_policy', {})
    nitpicky = config.get('routing_nitpicky', False)
    validate_policy(message.get('topic'), common_name.value, routing_policy, nitpicky=nitpicky)
    return common_name.value


# fedmsg.crypto._possible_backends; only x509 is implemented (and, as fedmsg's default
# crypto_validate_backends = ['x509'], gpg messages are refused as "disallowed").
_POSSIBLE_BACKENDS = {'gpg': 'gpg', 'x509': 'x509'}


def validate(message, ca_pem, crl_pem, chain=True, **config):
    """fedmsg.crypto.validate with crypto_validate_backends = ['x509']."""
    if 'crypto' in message:
        if message['crypto'] not in _POSSIBLE_BACKENDS:
            raise Invalid('unsupported_crypto', 'Message specified an impossible crypto backend')
        backend = _POSSIBLE_BACKENDS[message['crypto']]
    elif 'certificate' in message:
        backend = 'x509'
    elif 'signature' in message:
        backend = 'gpg'
    else:
        raise Invalid('unsupported_crypto', 'Could not determine crypto backend.  Message unsigned?')
    if backend != 'x509':
        raise Invalid('unsupported_crypto', 'Crypto backend %r is disallowed' % backend)
    return x509_validate(message, ca_pem, crl_pem, config, chain=chain)


def validate_signed_by(message, signer, ca_pem, crl_pem, chain=True, **config):
    """fedmsg.crypto.validate_signed_by."""
    config = copy.deepcopy(config)
    config['routing_nitpicky'] = True
    config['routing_policy'] = {message['topic']: [signer]}
    return validate(message, ca_pem, crl_pem, chain=chain, **config)


# --------------------------------------------------------------------------- CLI

def _read_file(path):
    with open(path, 'rb') as f:
        return f.read()


def _lines():
    for raw in sys.stdin.buffer:
        line = raw.decode('utf-8').rstrip('\r\n')
        if line:
            yield line


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')


def cmd_validate(args):
    ca_pem = None if args.no_chain else _read_file(args.ca)
    crl_pem = _read_file(args.crl) if args.crl else None
    config = {'routing_policy': json.loads(args.policy) if args.policy else {},
              'routing_nitpicky': bool(args.nitpicky)}
    for line in _lines():
        out = {'ok': False, 'reason': None, 'detail': '', 'cn': None, 'topic_match': None, 'raised': False}
        try:
            frames = json.loads(line)
            message = loads(frames['body'])  # fedmsg.encoding.loads
            # fedmsg itself never compares frame 0 with the signed topic; reported apart.
            out['topic_match'] = isinstance(message, dict) and message.get('topic') == frames['topic']
            if args.signed_by is not None:
                cn = validate_signed_by(message, args.signed_by, ca_pem, crl_pem, chain=not args.no_chain, **config)
            else:
                cn = validate(message, ca_pem, crl_pem, chain=not args.no_chain, **config)
            out.update(ok=True, cn=cn)
        except Invalid as e:
            out.update(reason=e.reason, detail=e.detail)
        except Exception as e:  # fedmsg would raise out of validate()
            out.update(reason='malformed', detail='%s: %s' % (type(e).__name__, e), raised=True)
        _emit(out)


def cmd_sign(args):
    key_pem = _read_file(args.key)
    cert_pem = _read_file(args.cert)
    for line in _lines():
        try:
            message = loads(line)
            signed = sign(message, key_pem, cert_pem)
            canonical = dumps(strip_credentials(signed))
            if args.wire == 'fedmsg':
                body = dumps(signed)  # fedmsg.core publish: fedmsg.encoding.dumps(msg)
            else:
                body = json.dumps(signed, ensure_ascii=(args.wire == 'spaced'))
            _emit({'ok': True, 'body': body, 'canonical': canonical})
        except Exception as e:
            _emit({'ok': False, 'error': '%s: %s' % (type(e).__name__, e)})


def cmd_canon(args):
    for line in _lines():
        try:
            _emit({'ok': True, 'canonical': dumps(loads(line))})
        except Exception as e:
            _emit({'ok': False, 'error': '%s: %s' % (type(e).__name__, e)})


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


def cmd_reserialize(args):
    """A relay: json.loads, then json.dumps with default separators, keys reordered."""
    for line in _lines():
        try:
            _emit({'ok': True, 'text': json.dumps(_reverse_keys(loads(line)))})
        except Exception as e:
            _emit({'ok': False, 'error': '%s: %s' % (type(e).__name__, e)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('validate')
    p.add_argument('--ca')
    p.add_argument('--crl')
    p.add_argument('--policy')
    p.add_argument('--nitpicky', action='store_true')
    p.add_argument('--signed-by', dest='signed_by')
    p.add_argument('--no-chain', dest='no_chain', action='store_true')
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser('sign')
    p.add_argument('--cert', required=True)
    p.add_argument('--key', required=True)
    p.add_argument('--wire', choices=['fedmsg', 'spaced', 'unicode'], default='fedmsg')
    p.set_defaults(func=cmd_sign)
    sub.add_parser('canon').set_defaults(func=cmd_canon)
    sub.add_parser('reserialize').set_defaults(func=cmd_reserialize)
    args = parser.parse_args(argv)
    if args.command == 'validate' and not args.no_chain and not args.ca:
        parser.error('validate needs --ca (or --no-chain)')
    args.func(args)
    sys.stdout.flush()


if __name__ == '__main__':
    main()
