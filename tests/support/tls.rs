//! Checks a TLS registry without a TLS client crate.
//!
//! The harness cannot depend on rustls directly, yet a TLS test should show
//! more than "the port is open": the server really speaks TLS, presents the
//! certificate generated for it, and that certificate chains to the CA whose
//! PEM tests hand to the client under test. In TLS 1.2 the server's
//! Certificate message travels in the clear, so this sends a hand-made TLS 1.2
//! ClientHello, reads the certificate chain, and checks X.509 signatures with
//! `ring` after a minimal DER walk.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;

/// Decodes every `-----BEGIN CERTIFICATE-----` block of a PEM file to DER.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b64) = current.take() {
                out.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .expect("PEM certificate is base64"),
                );
            }
        } else if let Some(b64) = current.as_mut() {
            b64.push_str(line);
        }
    }
    out
}

/// Performs the first flight of a TLS 1.2 handshake with `host`
/// (`127.0.0.1:PORT`) and returns the server's certificate chain (DER, leaf
/// first). Errors if the server answers with an alert or something that is
/// not TLS.
pub fn tls12_server_certificates(host: &str) -> io::Result<Vec<Vec<u8>>> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&client_hello())?;

    let mut handshake = Vec::new();
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut fragment = vec![0u8; len];
        stream.read_exact(&mut fragment)?;
        match header[0] {
            22 => handshake.extend_from_slice(&fragment),
            21 => {
                return Err(io::Error::other(format!(
                    "TLS alert from server: {fragment:?}"
                )));
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a TLS record (content type {other}, header {header:?})"),
                ));
            }
        }
        // Walk the complete handshake messages received so far.
        let mut rest = handshake.as_slice();
        while rest.len() >= 4 {
            let msg_len =
                (usize::from(rest[1]) << 16) | (usize::from(rest[2]) << 8) | usize::from(rest[3]);
            if rest.len() < 4 + msg_len {
                break;
            }
            let (msg_type, body) = (rest[0], &rest[4..4 + msg_len]);
            match msg_type {
                11 => return Ok(parse_certificate_message(body)),
                14 => return Err(io::Error::other("ServerHelloDone without Certificate")),
                _ => {}
            }
            rest = &rest[4 + msg_len..];
        }
    }
}

fn parse_certificate_message(body: &[u8]) -> Vec<Vec<u8>> {
    let u24 = |b: &[u8]| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
    let total = u24(body);
    let mut rest = &body[3..3 + total];
    let mut certs = Vec::new();
    while rest.len() >= 3 {
        let len = u24(rest);
        certs.push(rest[3..3 + len].to_vec());
        rest = &rest[3 + len..];
    }
    certs
}

fn client_hello() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[3, 3]); // TLS 1.2
    body.extend_from_slice(&super::random_bytes(32));
    body.push(0); // no session id
    let suites: [u16; 6] = [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // null compression only

    let mut extensions = Vec::new();
    let mut extension = |kind: u16, data: &[u8]| {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend_from_slice(&(data.len() as u16).to_be_bytes());
        extensions.extend_from_slice(data);
    };
    extension(0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]); // x25519, P-256, P-384
    extension(0x000b, &[1, 0]); // uncompressed points
    extension(0x000d, &[0, 8, 4, 3, 8, 4, 4, 1, 5, 3]); // ecdsa/rsa-pss/rsa sha256, ecdsa sha384
    extension(0xff01, &[0]); // renegotiation_info
    extension(0x0017, &[]); // extended_master_secret
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);

    let mut handshake = vec![1]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// One DER element: tag, its full encoding, and its contents.
struct Der<'a> {
    tag: u8,
    full: &'a [u8],
    contents: &'a [u8],
}

/// Splits the first DER element off `input`.
fn der_next(input: &[u8]) -> Option<(Der<'_>, &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*input.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if input.len() < end {
        return None;
    }
    Some((
        Der {
            tag,
            full: &input[..end],
            contents: &input[header..end],
        },
        &input[end..],
    ))
}

fn der_children(contents: &[u8]) -> Option<Vec<Der<'_>>> {
    let mut out = Vec::new();
    let mut rest = contents;
    while !rest.is_empty() {
        let (el, r) = der_next(rest)?;
        out.push(el);
        rest = r;
    }
    Some(out)
}

/// (tbsCertificate DER, signature, tbs fields) of a certificate.
fn cert_parts(cert: &[u8]) -> Option<(&[u8], &[u8], Vec<Der<'_>>)> {
    let (outer, _) = der_next(cert)?;
    let parts = der_children(outer.contents)?;
    let [tbs, _alg, sig] = parts.as_slice() else {
        return None;
    };
    if sig.tag != 0x03 || sig.contents.first() != Some(&0) {
        return None;
    }
    let fields = der_children(tbs.contents)?;
    Some((tbs.full, &sig.contents[1..], fields))
}

/// The subjectPublicKey bits of a certificate.
fn public_key(cert: &[u8]) -> Option<&[u8]> {
    let (_, _, fields) = cert_parts(cert)?;
    // Skip the optional [0] version; then serial, signature, issuer, validity,
    // subject, subjectPublicKeyInfo.
    let offset = usize::from(fields.first()?.tag == 0xa0);
    let spki = fields.get(offset + 5)?;
    let spki_parts = der_children(spki.contents)?;
    let bits = spki_parts.get(1)?;
    (bits.tag == 0x03).then(|| &bits.contents[1..])
}

/// The raw (DER) subject and issuer names of a certificate.
pub fn subject_and_issuer(cert: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, _, fields) = cert_parts(cert)?;
    let offset = usize::from(fields.first()?.tag == 0xa0);
    Some((
        fields.get(offset + 4)?.full.to_vec(),
        fields.get(offset + 2)?.full.to_vec(),
    ))
}

/// Whether `cert` carries a valid ECDSA P-256/SHA-256 signature by the key of
/// `issuer` (both DER).
pub fn is_signed_by(cert: &[u8], issuer: &[u8]) -> bool {
    let (Some((tbs, signature, _)), Some(key)) = (cert_parts(cert), public_key(issuer)) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
        .verify(tbs, signature)
        .is_ok()
}
