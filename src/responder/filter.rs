//! A classic BPF filter for the packet socket: only IPv4 and IPv6 packets
//! addressed to a target reach user space. Everything else (the host's
//! other traffic, ARP, packets to other addresses) is dropped in the
//! kernel, before it is copied, so a busy host costs the responder nothing.

use libc::sock_filter;
use std::net::IpAddr;

const LD_H_ABS: u16 = 0x28;
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
/// Ancillary load of the packet's protocol (skb->protocol).
const PROTOCOL: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
/// Bytes of each accepted packet passed up: any IP packet whole.
const ACCEPT: u32 = 0x0004_0000;

fn insn(code: u16, jt: usize, jf: usize, k: u32) -> Option<sock_filter> {
    Some(sock_filter {
        code,
        jt: u8::try_from(jt).ok()?,
        jf: u8::try_from(jf).ok()?,
        k,
    })
}

/// The program for these targets, or `None` when it would not fit the
/// 8-bit jumps of classic BPF (hundreds of targets): then the socket takes
/// everything and the decision function sorts it out.
pub fn program(targets: &[IpAddr]) -> Option<Vec<sock_filter>> {
    let v4: Vec<u32> = targets
        .iter()
        .filter_map(|t| match t {
            IpAddr::V4(a) => Some(u32::from(*a)),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<[u32; 4]> = targets
        .iter()
        .filter_map(|t| match t {
            IpAddr::V6(a) => {
                let o = a.octets();
                Some(std::array::from_fn(|i| {
                    u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                }))
            }
            IpAddr::V4(_) => None,
        })
        .collect();
    let v4_start = 3;
    let v6_start = v4_start + 1 + v4.len() + 1;
    let accept = v6_start + 8 * v6.len() + 1;
    let reject = accept + 1;
    let mut p = Vec::with_capacity(reject + 1);
    p.push(insn(LD_H_ABS, 0, 0, PROTOCOL)?);
    p.push(insn(JEQ_K, v4_start - 2, 0, 0x0800)?);
    p.push(insn(JEQ_K, v6_start - 3, reject - 3, 0x86dd)?);
    // IPv4: destination address at offset 16.
    p.push(insn(LD_W_ABS, 0, 0, 16)?);
    for addr in &v4 {
        let pc = p.len();
        p.push(insn(JEQ_K, accept - (pc + 1), 0, *addr)?);
    }
    let pc = p.len();
    p.push(insn(JA, 0, 0, (reject - (pc + 1)) as u32)?);
    // IPv6: destination address at offsets 24..40, compared word by word.
    for (j, words) in v6.iter().enumerate() {
        let next = v6_start + 8 * (j + 1);
        for (w, word) in words.iter().enumerate() {
            p.push(insn(LD_W_ABS, 0, 0, 24 + 4 * w as u32)?);
            let pc = p.len();
            let jt = if w == 3 { accept - (pc + 1) } else { 0 };
            p.push(insn(JEQ_K, jt, next - (pc + 1), *word)?);
        }
    }
    let pc = p.len();
    p.push(insn(JA, 0, 0, (reject - (pc + 1)) as u32)?);
    debug_assert_eq!(p.len(), accept);
    p.push(insn(RET_K, 0, 0, ACCEPT)?);
    p.push(insn(RET_K, 0, 0, 0)?);
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `program` emits.
    fn run(p: &[sock_filter], protocol: u16, packet: &[u8]) -> u32 {
        let mut pc = 0;
        let mut a: u32 = 0;
        loop {
            let i = p[pc];
            pc += 1;
            match i.code {
                LD_H_ABS if i.k == PROTOCOL => a = u32::from(protocol),
                LD_W_ABS => {
                    let k = i.k as usize;
                    let Some(b) = packet.get(k..k + 4) else {
                        return 0;
                    };
                    a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JA => pc += i.k as usize,
                RET_K => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn v4_packet(dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45; 40];
        p[16..20].copy_from_slice(&dst);
        p
    }

    fn v6_packet(dst: &str) -> Vec<u8> {
        let mut p = vec![0x60; 60];
        let a: std::net::Ipv6Addr = dst.parse().unwrap();
        p[24..40].copy_from_slice(&a.octets());
        p
    }

    #[test]
    fn passes_only_packets_to_targets() {
        let targets: Vec<IpAddr> = ["198.19.0.1", "203.0.113.5", "2001:db8:19::1", "2001:db8::7"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let p = program(&targets).unwrap();
        assert_eq!(run(&p, 0x0800, &v4_packet([198, 19, 0, 1])), ACCEPT);
        assert_eq!(run(&p, 0x0800, &v4_packet([203, 0, 113, 5])), ACCEPT);
        assert_eq!(run(&p, 0x0800, &v4_packet([198, 19, 0, 2])), 0);
        assert_eq!(run(&p, 0x86dd, &v6_packet("2001:db8:19::1")), ACCEPT);
        assert_eq!(run(&p, 0x86dd, &v6_packet("2001:db8::7")), ACCEPT);
        assert_eq!(run(&p, 0x86dd, &v6_packet("2001:db8:19::2")), 0);
        assert_eq!(run(&p, 0x86dd, &v6_packet("2001:db8:18::1")), 0);
        assert_eq!(run(&p, 0x0806, &v4_packet([198, 19, 0, 1])), 0, "ARP");
        // An IPv4 target's bytes inside an IPv6 packet do not count.
        assert_eq!(run(&p, 0x86dd, &v4_packet([198, 19, 0, 1])), 0);
    }

    #[test]
    fn no_targets_pass_nothing_and_too_many_do_not_fit() {
        let p = program(&[]).unwrap();
        assert_eq!(run(&p, 0x0800, &v4_packet([198, 19, 0, 1])), 0);
        let many: Vec<IpAddr> = (0..300u32).map(|i| IpAddr::V4(i.into())).collect();
        assert!(program(&many).is_none());
    }
}
