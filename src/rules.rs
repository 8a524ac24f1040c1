//! Keeping the kernel quiet (DESIGN.md §3).
//!
//! The kernel must not answer a probe the responder answers, and its
//! rate-limited port unreachables must not stand in for the responder's.
//! The rules come from `templates/`, live in chains troll owns (one set per
//! deployment), are applied idempotently (a chain is flushed and refilled,
//! a jump is added only if missing) and are removed completely on exit. What
//! is applied is recorded in the state *before* it is applied, so that after
//! a crash `troll serve` or `troll teardown` removes it.

use crate::error::{Error, Result};
use crate::state::AppliedRule;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::process::Command;
use troll_providers::Family;

/// The fwmark on every packet the responder sends, so rules can tell its
/// replies from the kernel's.
pub const MARK: u32 = 0x7e11;

const TEMPLATE_V4: &str = include_str!("../templates/rules-v4.txt");
const TEMPLATE_V6: &str = include_str!("../templates/rules-v6.txt");

/// A target (local address) and its number of fake hops, as the rules
/// need them; or a hop address answering as a router interface
/// (`hop_address`), whose traffic the kernel never sees at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub address: IpAddr,
    pub hops: usize,
    pub hop_address: bool,
}

/// The chain names of a deployment: `TROLL-I-<name>` and `TROLL-O-<name>`,
/// within iptables' 28-character limit (long names are shortened with a
/// hash so they stay distinct).
pub fn chain_names(deployment: &str) -> (String, String) {
    let id = if deployment.len() <= 20 {
        deployment.to_string()
    } else {
        let hash = deployment.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("{}-{:06x}", &deployment[..13], hash & 0xff_ffff)
    };
    (format!("TROLL-I-{id}"), format!("TROLL-O-{id}"))
}

/// Renders the rules for a deployment's targets: iptables for IPv4 ones,
/// ip6tables for IPv6 ones. Each family served gets both chains.
pub fn render(deployment: &str, targets: &[Target]) -> Vec<AppliedRule> {
    let (chain_in, chain_out) = chain_names(deployment);
    let mut chains: BTreeMap<(Family, String, String, String), Vec<Vec<String>>> = BTreeMap::new();
    for target in targets {
        let family = Family::of(target.address);
        let template = match family {
            Family::Ipv4 => TEMPLATE_V4,
            Family::Ipv6 => TEMPLATE_V6,
        };
        let address = target.address.to_string();
        let hops = target.hops.to_string();
        let first_real_ttl = (target.hops + 1).to_string();
        let mark = format!("{MARK:#x}");
        let vars = [
            ("deployment", deployment),
            ("target", address.as_str()),
            ("hop_address", address.as_str()),
            ("hops", hops.as_str()),
            ("first_real_ttl", first_real_ttl.as_str()),
            ("chain_in", chain_in.as_str()),
            ("chain_out", chain_out.as_str()),
            ("mark", mark.as_str()),
        ];
        for line in template.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Target lines for targets, hop-address lines for those.
            if line.contains("{{hop_address}}") != target.hop_address {
                continue;
            }
            // A show without fake hops needs no TTL rule.
            if target.hops == 0 && line.contains("{{first_real_ttl}}") {
                continue;
            }
            let text = crate::template::render(line, &vars);
            let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            let [table, hook, chain, rule @ ..] = words.as_slice() else {
                continue;
            };
            chains
                .entry((family, table.clone(), hook.clone(), chain.clone()))
                .or_default()
                .push(rule.to_vec());
        }
        // Both chains always exist, even when empty, so that removal and
        // the live reload of a new message find the same set.
        for (hook, chain) in [("PREROUTING", &chain_in), ("OUTPUT", &chain_out)] {
            chains
                .entry((family, "raw".into(), hook.into(), chain.clone()))
                .or_default();
        }
    }
    chains
        .into_iter()
        .map(|((family, table, hook, chain), rules)| AppliedRule {
            family,
            table,
            hook,
            chain,
            rules,
            created_table: false,
        })
        .collect()
}

/// The `iptables-save` text of every table of a family (listing one table
/// by name would create it).
fn saved(family: Family) -> Result<String> {
    let tool = format!("{}-save", binary(family));
    let out = Command::new(&tool)
        .output()
        .map_err(|e| Error::io("cannot run", tool.clone(), e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn table_section(saved: &str, table: &str) -> Option<Vec<String>> {
    let mut lines = saved.lines().skip_while(|l| *l != format!("*{table}"));
    lines.next()?;
    Some(
        lines
            .take_while(|l| *l != "COMMIT")
            .map(str::to_string)
            .collect(),
    )
}

/// Marks the chains whose table does not exist yet, so `remove` can delete
/// the table again. Call before recording the rules in the state; `known`
/// carries the marks of an earlier apply (a reload keeps them).
pub fn mark_new_tables(rules: &mut [AppliedRule], known: &[AppliedRule]) -> Result<()> {
    let mut cache: BTreeMap<Family, String> = BTreeMap::new();
    for chain in rules.iter_mut() {
        let earlier = known
            .iter()
            .any(|k| k.family == chain.family && k.table == chain.table && k.created_table);
        let text = match cache.get(&chain.family) {
            Some(t) => t,
            None => cache.entry(chain.family).or_insert(saved(chain.family)?),
        };
        chain.created_table = earlier || table_section(text, &chain.table).is_none();
    }
    Ok(())
}

/// Deletes a table troll created once nothing is left in it but empty
/// built-in chains with policy ACCEPT. Only the nf_tables backend can
/// delete a table (with `nft`); elsewhere an empty table stays, which
/// changes no packet's fate.
fn drop_table_if_empty(family: Family, table: &str) -> Result<()> {
    let text = saved(family)?;
    let Some(section) = table_section(&text, table) else {
        return Ok(());
    };
    let empty = section
        .iter()
        .all(|l| l.starts_with(':') && l.contains(" ACCEPT"))
        && section.iter().all(|l| {
            let name = l
                .trim_start_matches(':')
                .split_whitespace()
                .next()
                .unwrap_or("");
            ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"].contains(&name)
        });
    if !empty || !text.contains("(nf_tables)") {
        return Ok(());
    }
    let nft_family = match family {
        Family::Ipv4 => "ip",
        Family::Ipv6 => "ip6",
    };
    match Command::new("nft")
        .args(["delete", "table", nft_family, table])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Error::Rules(format!(
            "`nft delete table {nft_family} {table}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => {
            tracing::debug!("nft is not available ({e}); leaving the empty {table} table");
            Ok(())
        }
    }
}

fn binary(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    }
}

/// A rule word as a shell reads it back: quoted when it holds characters
/// the shell would take (u32 expressions have `>` and `&`).
fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:!,=@".contains(c))
    {
        word.to_string()
    } else {
        format!("'{word}'")
    }
}

/// The exact commands `apply` runs, for `--dry-run`.
pub fn describe(rules: &[AppliedRule]) -> String {
    let mut out = String::new();
    for chain in rules {
        let b = binary(chain.family);
        let t = &chain.table;
        let c = &chain.chain;
        let _ = writeln!(out, "{b} -w -t {t} -N {c}    # unless it exists");
        let _ = writeln!(out, "{b} -w -t {t} -F {c}");
        for rule in &chain.rules {
            let words: Vec<String> = rule.iter().map(|w| shell_word(w)).collect();
            let _ = writeln!(out, "{b} -w -t {t} -A {c} {}", words.join(" "));
        }
        let _ = writeln!(
            out,
            "{b} -w -t {t} -I {} 1 -j {c}    # unless present",
            chain.hook
        );
    }
    out
}

fn run(family: Family, args: &[&str]) -> Result<std::process::Output> {
    Command::new(binary(family))
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| Error::spawn(binary(family), "iptables", e))
}

fn run_ok(family: Family, args: &[&str]) -> Result<()> {
    let out = run(family, args)?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Rules(format!(
        "`{} {}` failed: {}",
        binary(family),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Creates (or flushes) each chain, fills it, and adds the jump to it if
/// it is missing. Running it twice leaves the same rules.
pub fn apply(rules: &[AppliedRule]) -> Result<()> {
    for chain in rules {
        let (f, t, c) = (chain.family, chain.table.as_str(), chain.chain.as_str());
        if !run(f, &["-t", t, "-L", c, "-n"])?.status.success() {
            run_ok(f, &["-t", t, "-N", c])?;
        }
        run_ok(f, &["-t", t, "-F", c])?;
        for rule in &chain.rules {
            let mut args = vec!["-t", t, "-A", c];
            args.extend(rule.iter().map(String::as_str));
            run_ok(f, &args)?;
        }
        if !run(f, &["-t", t, "-C", &chain.hook, "-j", c])?
            .status
            .success()
        {
            run_ok(f, &["-t", t, "-I", &chain.hook, "1", "-j", c])?;
        }
    }
    Ok(())
}

/// Whether a recorded chain exists, with the jump to it, in this network
/// namespace.
pub fn chain_present(chain: &AppliedRule) -> bool {
    let (f, t, c) = (chain.family, chain.table.as_str(), chain.chain.as_str());
    let ok = |args: &[&str]| run(f, args).is_ok_and(|o| o.status.success());
    ok(&["-t", t, "-L", c, "-n"]) && ok(&["-t", t, "-C", &chain.hook, "-j", c])
}

/// Removes every jump to the chains and the chains themselves. Chains that
/// are already gone are fine: removal after a crash may find half.
pub fn remove(rules: &[AppliedRule]) -> Result<()> {
    let mut first_error = None;
    for chain in rules {
        let (f, t, c) = (chain.family, chain.table.as_str(), chain.chain.as_str());
        // A jump may have been added twice by hand; take them all.
        while run(f, &["-t", t, "-D", &chain.hook, "-j", c])?
            .status
            .success()
        {}
        if run(f, &["-t", t, "-L", c, "-n"])?.status.success() {
            if let Err(e) =
                run_ok(f, &["-t", t, "-F", c]).and_then(|()| run_ok(f, &["-t", t, "-X", c]))
            {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut created: Vec<(Family, &str)> = rules
        .iter()
        .filter(|c| c.created_table)
        .map(|c| (c.family, c.table.as_str()))
        .collect();
    created.dedup();
    for (family, table) in created {
        if let Err(e) = drop_table_if_empty(family, table) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` has `line` in it (the rules are shown whole when not).
    fn assert_has(text: &str, line: &str) {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }

    /// A target with `hops` fake hops.
    fn target(address: &str, hops: usize) -> Target {
        Target {
            address: address.parse().unwrap(),
            hops,
            hop_address: false,
        }
    }

    /// A hop address: answered by the responder as a router's interface.
    fn hop_address(address: &str) -> Target {
        Target {
            hop_address: true,
            ..target(address, 0)
        }
    }

    #[test]
    fn renders_ttl_and_port_unreachable_rules_per_target() {
        let rules = render("lab", &[target("198.18.0.100", 5)]);
        let text = describe(&rules);
        assert_has(
            &text,
            "iptables -w -t raw -A TROLL-I-lab -d 198.18.0.100/32 -m ttl --ttl-lt 6 -j DROP",
        );
        assert_has(&text, "iptables -w -t raw -A TROLL-O-lab -s 198.18.0.100/32 -p icmp --icmp-type port-unreachable -m u32 --u32 '0>>22&0x3C@14&0xFF=17' -m mark ! --mark 0x7e11 -j DROP");
        assert_has(&text, "-I PREROUTING 1 -j TROLL-I-lab");
        assert_has(&text, "-I OUTPUT 1 -j TROLL-O-lab");
        // Every protocol is hidden below the first real TTL: TCP with any
        // flags too (issue 16), only ICMP errors pass.
        assert!(!text.contains("-p tcp"), "{text}");
        assert_eq!(rules.iter().map(|r| r.rules.len()).sum::<usize>(), 5);
        // The u32 expression is one word, unquoted, for iptables itself.
        let out = rules.iter().find(|r| r.hook == "OUTPUT").unwrap();
        assert!(out.rules[0].contains(&"0>>22&0x3C@14&0xFF=17".to_string()));
    }

    #[test]
    fn hop_addresses_are_hidden_from_the_kernel_but_for_icmp_errors() {
        let rules = render(
            "lab",
            &[
                target("198.18.0.100", 3),
                hop_address("198.18.0.1"),
                Target {
                    hops: 2,
                    ..hop_address("2001:db8:18::1")
                },
            ],
        );
        let text = describe(&rules);
        assert_has(
            &text,
            "iptables -w -t raw -A TROLL-I-lab -d 198.18.0.1/32 -j DROP",
        );
        assert_has(&text, "iptables -w -t raw -A TROLL-I-lab -d 198.18.0.1/32 -p icmp --icmp-type time-exceeded -j RETURN");
        assert_has(
            &text,
            "ip6tables -w -t raw -A TROLL-I-lab -d 2001:db8:18::1/128 -j DROP",
        );
        // No target rule names a hop address, no OUTPUT rule is added.
        assert!(!text.contains("-s 198.18.0.1/"), "{text}");
        assert!(!text.contains("-d 198.18.0.1/32 -m ttl"), "{text}");
        // v4 target 5, v4 hop address 4, v6 hop address 6 (with neighbour
        // discovery's RETURN).
        assert_eq!(
            rules.iter().map(|r| r.rules.len()).sum::<usize>(),
            5 + 4 + 6
        );
    }

    #[test]
    fn no_fake_hops_means_no_ttl_rules_but_the_chains_stay() {
        let rules = render("x", &[target("198.18.0.100", 0)]);
        assert_eq!(rules.len(), 2);
        assert!(!describe(&rules).contains("--ttl-lt"));
    }

    #[test]
    fn ipv6_targets_get_ip6tables_rules_with_the_hop_limit() {
        let rules = render(
            "lab",
            &[target("198.18.0.100", 2), target("2001:db8:19::1", 3)],
        );
        assert_eq!(rules.len(), 4, "two chains per family");
        let text = describe(&rules);
        assert_has(
            &text,
            "ip6tables -w -t raw -A TROLL-I-lab -d 2001:db8:19::1/128 -m hl --hl-lt 4 -j DROP",
        );
        assert_has(
            &text,
            "--icmpv6-type port-unreachable -m u32 --u32 '51&0xFF=17' -m mark ! --mark 0x7e11",
        );
        assert_has(
            &text,
            "iptables -w -t raw -A TROLL-I-lab -d 198.18.0.100/32 -m ttl --ttl-lt 3 -j DROP",
        );
    }

    #[test]
    fn chain_names_fit_and_stay_distinct() {
        let a = chain_names(&"a".repeat(64));
        let b = chain_names(&format!("{}b", "a".repeat(63)));
        assert!(a.0.len() <= 28 && a.1.len() <= 28, "{a:?}");
        assert_ne!(a, b);
        assert_eq!(chain_names("default").0, "TROLL-I-default");
    }
}
