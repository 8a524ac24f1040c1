//! `troll check`'s judgement: a trace of each protocol against the show
//! expected, hop by hop. Pure: the prober ([`probe`]) and the resolvers
//! give their answers, [`judge`] aligns them with the show and gives each
//! fake hop and the target a verdict.
//!
//! The show starts at the first hop whose answer comes from a show address
//! (known from the deployment), or else whose PTR is one of the show's
//! names; if none does, it would have started where the target answered.

pub mod probe;

use probe::{Answer, Protocol, Trace};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Serialized as the words the text output uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "no answer")]
    NoAnswer,
    #[serde(rename = "wrong address")]
    WrongAddress,
    #[serde(rename = "no PTR yet")]
    NoPtrYet,
    #[serde(rename = "wrong name")]
    WrongName,
    #[serde(rename = "out of hop range")]
    OutOfHopRange,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NoAnswer => "no answer",
            Verdict::WrongAddress => "wrong address",
            Verdict::NoPtrYet => "no PTR yet",
            Verdict::WrongName => "wrong name",
            Verdict::OutOfHopRange => "out of hop range",
        }
    }
}

/// One line of the show as expected: a name (or silent), and the address
/// it must come from when the deployment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHop {
    /// `None`: a silent hop (a blank line).
    pub name: Option<String>,
    pub address: Option<IpAddr>,
}

/// The show as expected: fake hops, then the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub hops: Vec<ExpectedHop>,
    pub target: IpAddr,
    /// The target's own name, when the message sets it.
    pub target_name: Option<String>,
}

/// The PTR names one address has, per resolver (in the order asked).
pub type Names = Vec<Option<String>>;

/// One judged line.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// 1-based fake hop number (`hops + 1` for the target).
    pub hop: usize,
    /// The TTL it was (or would be) seen at, when the show's start is known.
    pub ttl: Option<usize>,
    pub target: bool,
    /// `None`: silent (no answer expected).
    pub expected: Option<String>,
    pub address: Option<IpAddr>,
    /// What each resolver returned for `address`.
    pub ptr: Names,
    pub verdict: Verdict,
}

/// One protocol's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub protocol: Protocol,
    /// TTL of the show's first fake hop.
    pub start: Option<usize>,
    /// Real hops before the show.
    pub real_hops: Vec<Option<IpAddr>>,
    pub lines: Vec<Line>,
    pub probes: usize,
    /// The `-m` a client needs to see the whole show from here.
    pub needs_max_hops: Option<usize>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lines.iter().all(|l| l.verdict == Verdict::Ok)
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.lines.iter().filter(|l| l.verdict == verdict).count()
    }
}

/// Compares a name byte for byte with what is expected.
fn name_verdict(expected: &str, names: &Names) -> Verdict {
    if names.iter().all(|n| n.as_deref() == Some(expected)) {
        Verdict::Ok
    } else if names
        .iter()
        .any(|n| n.as_deref().is_some_and(|n| n != expected))
    {
        Verdict::WrongName
    } else {
        Verdict::NoPtrYet
    }
}

/// Where the show starts in `trace`: the TTL of fake hop 1.
pub fn find_start(
    expected: &Expected,
    trace: &Trace,
    names: &BTreeMap<IpAddr, Names>,
) -> Option<usize> {
    let show_addresses: Vec<IpAddr> = expected.hops.iter().filter_map(|h| h.address).collect();
    for (&ttl, answer) in &trace.answers {
        let Answer::Hop(addr) = answer else { continue };
        let by_address = expected.hops.iter().position(|h| h.address == Some(*addr));
        let by_name = || {
            let got = names.get(addr)?;
            expected.hops.iter().position(|h| {
                h.name.is_some()
                    && got
                        .iter()
                        .any(|n| n.is_some() && n.as_deref() == h.name.as_deref())
            })
        };
        let index = if show_addresses.is_empty() {
            by_name()
        } else {
            by_address
        };
        if let Some(index) = index {
            let ttl = usize::from(ttl);
            if ttl > index {
                return Some(ttl - index);
            }
        }
    }
    let reached = usize::from(trace.reached?);
    // No name or address to go by (e.g. no PTRs yet): if the TTLs just
    // before the target answer the way the show's lines would (silent
    // lines unanswered, every other line answered, equal lines from one
    // address, different lines from different ones), the show is there.
    let count = expected.hops.len();
    if count > 0 && reached > count + 1 {
        let start = reached - count;
        let mut by_name: BTreeMap<&str, IpAddr> = BTreeMap::new();
        let fits = expected.hops.iter().enumerate().all(|(i, hop)| {
            let answer = u8::try_from(start + i)
                .ok()
                .and_then(|t| trace.answers.get(&t));
            match (&hop.name, answer) {
                (None, None) => true,
                (Some(name), Some(Answer::Hop(addr))) => {
                    let same = *by_name.entry(name.as_str()).or_insert(*addr) == *addr;
                    let taken = by_name
                        .iter()
                        .any(|(n, a)| a == addr && *n != name.as_str());
                    same && !taken
                }
                _ => false,
            }
        });
        if fits {
            return Some(start);
        }
    }
    // Nothing of the show answered: it would start where the target did.
    Some(reached)
}

/// Judges one protocol's trace.
pub fn judge(
    protocol: Protocol,
    expected: &Expected,
    trace: &Trace,
    names: &BTreeMap<IpAddr, Names>,
    max_hops: usize,
) -> Report {
    let start = find_start(expected, trace, names);
    let reached = trace.reached.map(usize::from);
    let lookup = |addr: &IpAddr| names.get(addr).cloned().unwrap_or_default();
    let mut lines = Vec::new();
    let count = expected.hops.len();
    for (i, hop) in expected.hops.iter().enumerate() {
        let ttl = start.map(|s| s + i);
        let answer = ttl
            .and_then(|t| u8::try_from(t).ok())
            .and_then(|t| trace.answers.get(&t));
        let beyond_range = ttl.is_some_and(|t| t > max_hops);
        // The target (or an unreachable) answered at or before this TTL.
        let cut_short = matches!((ttl, reached), (Some(t), Some(r)) if t >= r);
        let (address, ptr, verdict) = match (answer, &hop.name) {
            // Nothing of the show, and no target: not even a silent line
            // can be said to be right.
            _ if start.is_none() => (None, Vec::new(), Verdict::NoAnswer),
            _ if cut_short => (
                answer.map(|a| a.address()),
                answer.map(|a| lookup(&a.address())).unwrap_or_default(),
                Verdict::NoAnswer,
            ),
            _ if beyond_range => (None, Vec::new(), Verdict::OutOfHopRange),
            (None, None) => (None, Vec::new(), Verdict::Ok),
            (None, Some(_)) => (None, Vec::new(), Verdict::NoAnswer),
            (Some(a), None) => (
                Some(a.address()),
                lookup(&a.address()),
                Verdict::WrongAddress,
            ),
            (Some(a), Some(name)) => {
                let addr = a.address();
                let ptr = lookup(&addr);
                let wrong_address = match hop.address {
                    Some(want) => want != addr,
                    None => addr == expected.target,
                };
                let verdict = if wrong_address {
                    Verdict::WrongAddress
                } else {
                    name_verdict(name, &ptr)
                };
                (Some(addr), ptr, verdict)
            }
        };
        lines.push(Line {
            hop: i + 1,
            ttl,
            target: false,
            expected: hop.name.clone(),
            address,
            ptr,
            verdict,
        });
    }
    // The target: its answer at the TTL after the last fake hop.
    let ttl = start.map(|s| s + count);
    let target_line = {
        let answer = reached.and_then(|r| trace.answers.get(&(r as u8)));
        let (address, ptr, verdict) = match answer {
            None if ttl.is_some_and(|t| t > max_hops) => (None, Vec::new(), Verdict::OutOfHopRange),
            None => (None, Vec::new(), Verdict::NoAnswer),
            Some(a) => {
                let addr = a.address();
                let ptr = lookup(&addr);
                let verdict = if addr != expected.target || !matches!(a, Answer::Reached(_)) {
                    Verdict::WrongAddress
                } else {
                    match &expected.target_name {
                        Some(name) => name_verdict(name, &ptr),
                        None => Verdict::Ok,
                    }
                };
                (Some(addr), ptr, verdict)
            }
        };
        Line {
            hop: count + 1,
            ttl,
            target: true,
            expected: expected.target_name.clone(),
            address,
            ptr,
            verdict,
        }
    };
    lines.push(target_line);
    let real_end = start
        .unwrap_or_else(|| reached.unwrap_or(0))
        .saturating_sub(1);
    let real_hops = (1..=real_end)
        .map(|t| {
            u8::try_from(t)
                .ok()
                .and_then(|t| trace.answers.get(&t))
                .map(|a| a.address())
        })
        .collect();
    let needs_max_hops = start
        .map(|s| s + count)
        .filter(|&t| t > max_hops && reached.is_none());
    Report {
        protocol,
        start,
        real_hops,
        lines,
        probes: trace.probes,
        needs_max_hops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn expected() -> Expected {
        Expected {
            hops: vec![
                ExpectedHop {
                    name: Some("Hop-One".into()),
                    address: None,
                },
                ExpectedHop {
                    name: None,
                    address: None,
                },
                ExpectedHop {
                    name: Some("Hop-Two".into()),
                    address: None,
                },
            ],
            target: ip("198.51.100.100"),
            target_name: Some("Target".into()),
        }
    }

    /// A trace with Time Exceeded from `hops` (TTL, address) and, if
    /// given, the target's own answer at (TTL, address).
    fn trace(hops: &[(u8, &str)], reached: Option<(u8, &str)>) -> Trace {
        let mut answers: BTreeMap<u8, Answer> =
            hops.iter().map(|&(t, a)| (t, Answer::Hop(ip(a)))).collect();
        if let Some((t, a)) = reached {
            answers.insert(t, Answer::Reached(ip(a)));
        }
        Trace {
            answers,
            probes: 10,
            reached: reached.map(|(t, _)| t),
        }
    }

    fn names(list: &[(&str, Option<&str>)]) -> BTreeMap<IpAddr, Names> {
        list.iter()
            .map(|(a, n)| (ip(a), vec![n.map(String::from)]))
            .collect()
    }

    fn verdicts(r: &Report) -> Vec<Verdict> {
        r.lines.iter().map(|l| l.verdict).collect()
    }

    #[test]
    fn a_good_show_after_two_real_hops() {
        let t = trace(
            &[
                (1, "10.0.0.1"),
                (2, "10.0.0.2"),
                (3, "198.51.100.101"),
                (5, "198.51.100.102"),
            ],
            Some((6, "198.51.100.100")),
        );
        let n = names(&[
            ("10.0.0.1", Some("r1")),
            ("198.51.100.101", Some("Hop-One")),
            ("198.51.100.102", Some("Hop-Two")),
            ("198.51.100.100", Some("Target")),
        ]);
        let r = judge(Protocol::Udp, &expected(), &t, &n, 64);
        assert_eq!(r.start, Some(3));
        assert_eq!(r.real_hops.len(), 2);
        assert!(r.ok(), "{r:?}");
    }

    #[test]
    fn names_compare_byte_for_byte() {
        let t = trace(
            &[(1, "198.51.100.101"), (3, "198.51.100.102")],
            Some((4, "198.51.100.100")),
        );
        let n = names(&[
            ("198.51.100.101", Some("Hop-One")),
            ("198.51.100.102", Some("hop-two")),
            ("198.51.100.100", None),
        ]);
        let r = judge(Protocol::Icmp, &expected(), &t, &n, 64);
        assert_eq!(
            verdicts(&r),
            [
                Verdict::Ok,
                Verdict::Ok,
                Verdict::WrongName,
                Verdict::NoPtrYet
            ]
        );
    }

    #[test]
    fn a_stopped_server_is_no_answer() {
        let t = trace(&[(1, "10.0.0.1")], Some((2, "198.51.100.100")));
        let r = judge(Protocol::Udp, &expected(), &t, &names(&[]), 64);
        assert_eq!(r.start, Some(2));
        assert_eq!(&verdicts(&r)[..3], [Verdict::NoAnswer; 3]);
    }

    #[test]
    fn a_show_past_max_hops_is_out_of_range() {
        let t = trace(&[(1, "10.0.0.1"), (2, "198.51.100.101")], None);
        let n = names(&[("198.51.100.101", Some("Hop-One"))]);
        let r = judge(Protocol::Tcp, &expected(), &t, &n, 3);
        assert_eq!(
            verdicts(&r),
            [
                Verdict::Ok,
                Verdict::Ok,
                Verdict::OutOfHopRange,
                Verdict::OutOfHopRange
            ]
        );
        assert_eq!(r.needs_max_hops, Some(5));
    }

    #[test]
    fn a_known_address_that_differs_is_wrong_address() {
        let mut e = expected();
        e.hops[0].address = Some(ip("198.51.100.101"));
        e.hops[2].address = Some(ip("198.51.100.102"));
        let t = trace(
            &[(1, "198.51.100.101"), (3, "10.9.9.9")],
            Some((4, "198.51.100.100")),
        );
        let n = names(&[
            ("198.51.100.101", Some("Hop-One")),
            ("198.51.100.100", Some("Target")),
        ]);
        let r = judge(Protocol::Udp, &e, &t, &n, 64);
        assert_eq!(
            verdicts(&r),
            [Verdict::Ok, Verdict::Ok, Verdict::WrongAddress, Verdict::Ok]
        );
    }
}
