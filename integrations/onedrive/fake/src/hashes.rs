//! The content hashes a driveItem's `file.hashes` carries, computed from the bytes the
//! fake serves, so a client that checks what it downloaded has something true to check
//! against.
//!
//! - **quickXorHash** (every drive type): Microsoft's 160-bit XOR-and-shift hash. Byte
//!   `i` of the content is XORed into a 160-bit circular register at bit `11 * i mod
//!   160` (the register read little-endian: bit `k` is bit `k % 8` of byte `k / 8`);
//!   at the end the content's length, as 8 little-endian bytes, is XORed into the
//!   register's last 8 bytes. The answer is the register's 20 bytes in standard base64
//!   with padding.
//! - **sha1Hash** (personal drives): SHA-1 (FIPS 180-4) of the content, as Graph
//!   writes it: 40 uppercase hexadecimal digits.
//!
//! Both are written here rather than taken from a crate: they are small, and the fake
//! needs nothing else from a hashing library.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The register's width in bytes.
const QUICK_XOR_BYTES: usize = 20;

/// quickXorHash of `data`, base64 as Graph answers it.
pub(crate) fn quick_xor_hash(data: &[u8]) -> String {
    let mut register = [0u8; QUICK_XOR_BYTES];
    let mut bit = 0usize;
    for &byte in data {
        let index = bit / 8;
        let shift = bit % 8;
        register[index] ^= byte << shift;
        if shift != 0 {
            register[(index + 1) % QUICK_XOR_BYTES] ^= byte >> (8 - shift);
        }
        bit = (bit + 11) % (QUICK_XOR_BYTES * 8);
    }
    let length = (data.len() as u64).to_le_bytes();
    for (i, byte) in length.iter().enumerate() {
        register[QUICK_XOR_BYTES - length.len() + i] ^= byte;
    }
    STANDARD.encode(register)
}

/// SHA-1 of `data`, as 40 uppercase hexadecimal digits.
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    let mut state: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let bit_length = (data.len() as u64).wrapping_mul(8);
    let mut chunks = data.chunks_exact(64);
    for block in &mut chunks {
        sha1_block(&mut state, block);
    }
    // The tail, the 0x80 marker, zeros and the length: one or two more blocks.
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let blocks = if rest.len() < 56 { 1 } else { 2 };
    tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&bit_length.to_be_bytes());
    for block in tail[..blocks * 64].chunks_exact(64) {
        sha1_block(&mut state, block);
    }
    state.iter().map(|word| format!("{word:08X}")).collect()
}

fn sha1_block(state: &mut [u32; 5], block: &[u8]) {
    let mut w = [0u32; 80];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    for (i, word) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let next = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(*word);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = next;
    }
    for (slot, value) in state.iter_mut().zip([a, b, c, d, e]) {
        *slot = slot.wrapping_add(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_xor_matches_published_vectors() {
        // (base64 content, expected hash): vectors used by several OneDrive clients.
        let vectors = [
            ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
            ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
            ("0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
            ("jRRDVA==", "jaDAEKgAAAAAAAAABAAAAAAAAAA="),
            ("n6Neh7p6fFgm", "nxiFFw6hCz3wAQsmCQAAAAAAAAA="),
            ("XoJ1AsoR4fDYJrDqYs4=", "XhBEHQSgjAiEAx7YPgEs1CEGZwA="),
            ("gQaybEqS/4UlDc8e4IJm", "gDCALNigBEn8oxAlZ8AzPAAOQZg="),
            ("2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
        ];
        for (input, expected) in vectors {
            let data = STANDARD.decode(input).unwrap();
            assert_eq!(quick_xor_hash(&data), expected, "input {input}");
        }
    }

    #[test]
    fn quick_xor_wraps_around_the_register() {
        let data = [
            0x4f, 0xa2, 0xd8, 0x24, 0x87, 0xc3, 0x87, 0xcd, 0x49, 0xac, 0x02, 0xb7, 0xd3, 0xd1,
            0xf6, 0x24, 0xc2, 0x53, 0x5e, 0x2b,
        ];
        assert_eq!(quick_xor_hash(&data), "zBTHrspn3mEcohlJdIUAbjGNaNg=");
    }

    #[test]
    fn sha1_matches_fips_vectors() {
        assert_eq!(sha1_hex(b""), "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
        assert_eq!(sha1_hex(b"abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
        assert_eq!(
            sha1_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983E441C3BD26EBAAE4AA1F95129E5E54670F1"
        );
        assert_eq!(
            sha1_hex(&vec![b'a'; 1_000_000]),
            "34AA973CD4C4DAA4F61EEB2BDBAD27316534016F"
        );
        // Around the padding's edges: the length fits the last block, or needs another.
        let edges = [
            (55, "CEF734BA81A024479E09EB5A75B6DDAE62E6ABF1"),
            (56, "901305367C259952F4E7AF8323F480D59F81335B"),
            (63, "0DDC4E0CCCD9A12850DEB5ABB0853A4425559FEC"),
            (64, "BB2FA3EE7AFB9F54C6DFB5D021F14B1FFE40C163"),
            (119, "4300320394F7EE239BCDCE7D3B8BCEE173A0CD5C"),
            (120, "CEB2821639C4B6DCB10BCE0E522CA2E608CE056D"),
        ];
        for (len, expected) in edges {
            assert_eq!(sha1_hex(&vec![b'x'; len]), expected, "{len} bytes");
        }
    }
}
