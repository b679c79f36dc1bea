import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { describe, expect, test } from 'vitest';
import { inWords, opensslReason, ProbeError, toProbeError } from '../../src/probe/errors.js';
import { selfSigned } from '../helpers/tls.js';

const raw = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('inWords', () => {
  test('a certificate for another name: the name probed and --servername', () => {
    const { cert } = selfSigned();
    const x = new X509Certificate(cert);
    const err = tls.checkServerIdentity('mx.elsewhere.test', x.toLegacyObject() as unknown as tls.PeerCertificate)!;
    expect((err as NodeJS.ErrnoException).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    const pe = toProbeError(err, 'starttls');
    expect(pe.code).toBe('ETLS');
    const text = inWords(pe, { servername: 'mx.elsewhere.test' });
    expect(text).toMatch(/not issued for "mx\.elsewhere\.test".*--servername NAME/);
    expect(text).toContain('DNS:localhost');
  });

  test.each([
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate', /self-signed.*NODE_EXTRA_CA_CERTS.*--insecure/],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate', /CA this machine does not trust.*NODE_EXTRA_CA_CERTS/],
    ['CERT_HAS_EXPIRED', 'certificate has expired', /has expired.*--insecure/],
  ])('%s → a sentence with the fix', (code, message, want) => {
    const pe = toProbeError(raw(code, message), 'starttls');
    expect(pe.code).toBe('ETLS');
    expect(inWords(pe)).toMatch(want);
  });

  test('wrong version number: implicit TLS against plain SMTP, or STARTTLS answered in plain text', () => {
    const m = 'C0D7:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:354:';
    const implicit = toProbeError(raw('ERR_SSL_WRONG_VERSION_NUMBER', m), 'tls');
    expect(inWords(implicit)).toBe('the server speaks plain SMTP on this port (it answered the TLS handshake in plain text): use --tls starttls (or --tls none)');
    expect(inWords(toProbeError(raw('ERR_SSL_WRONG_VERSION_NUMBER', m), 'starttls'))).toMatch(/accepted STARTTLS but then answered in plain text/);
  });

  test('other OpenSSL errors lose the source path, keep the reason and the alert', () => {
    const m = 'C0:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1590:SSL alert number 40';
    expect(opensslReason(m)).toBe('sslv3 alert handshake failure (TLS alert 40)');
    expect(inWords(toProbeError(raw('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', m), 'tls'))).toBe('TLS handshake failed: sslv3 alert handshake failure (TLS alert 40)');
  });

  test('through a proxy, connect failures are the proxy\'s; messages that name the proxy stay', () => {
    const ctx = { proxy: 'socks5://127.0.0.1:1080' };
    expect(inWords(toProbeError(raw('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1080'), 'connect'), ctx)).toMatch(/^the proxy socks5:\/\/127\.0\.0\.1:1080 refused the connection/);
    const own = new ProbeError('EPROXY', 'SOCKS5 proxy rejected the username/password', 'connect');
    expect(inWords(own, ctx)).toBe(own.message);
    // without a proxy, the same refusal is the target's
    expect(inWords(toProbeError(raw('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:25'), 'connect'))).toBe('connect ECONNREFUSED 127.0.0.1:25');
  });
});
