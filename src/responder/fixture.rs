//! Checksums and fixtures for test packets, shared by the decision's unit
//! tests (`decide.rs`), its fuzz target (`fuzz/fuzz_targets/decide.rs`) and
//! the hostile battery (`tests/lab_hostile.rs`). It needs only std and
//! etherparse, so the fuzz target and the integration test compile it in
//! by path, as the fuzz target does `decide.rs`; each of them uses a part.
#![allow(dead_code)]

use etherparse::checksum::Sum16BitWords;

/// The bytes a hex string spells; whitespace (line breaks in long
/// fixtures) is skipped.
pub fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ascii hex");
            u8::from_str_radix(text, 16).expect("hex digit")
        })
        .collect()
}

/// One's complement sum of 16-bit words: 0 over a block whose checksum is
/// right (an IPv4 header, an ICMPv4 message).
pub fn ones_complement(bytes: &[u8]) -> u16 {
    Sum16BitWords::new().add_slice(bytes).ones_complement()
}

/// The same over an ICMPv6 message and its pseudo-header (RFC 8200 8.1):
/// 0 when the message's checksum is right.
pub fn icmpv6_sum(source: [u8; 16], destination: [u8; 16], message: &[u8]) -> u16 {
    let len = u32::try_from(message.len()).expect("an ICMPv6 message fits a u32 length");
    Sum16BitWords::new()
        .add_16bytes(source)
        .add_16bytes(destination)
        .add_4bytes(len.to_be_bytes())
        .add_4bytes([0, 0, 0, 58])
        .add_slice(message)
        .ones_complement()
}

/// Recomputes the IPv4 header checksum over the header length (IHL)
/// words, after a test edited the header; a header whose IHL is below 5
/// or beyond the packet (or an empty packet) is left as it is.
pub fn fix_ipv4_checksum(packet: &mut [u8]) {
    let Some(&first) = packet.first() else {
        return;
    };
    let ihl = usize::from(first & 0xf) * 4;
    if ihl < 20 || ihl > packet.len() {
        return;
    }
    packet[10..12].copy_from_slice(&[0, 0]);
    let sum = ones_complement(&packet[..ihl]);
    // etherparse sums native-endian words, so the sum's bytes go back as is.
    packet[10..12].copy_from_slice(&sum.to_ne_bytes());
}
