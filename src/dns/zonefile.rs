//! Zone export: the same zones as BIND-style zone files, for BIND, NSD or
//! Knot when the operator's own server answers the reverse lookups.

use super::{ZoneData, SOA_EXPIRE, SOA_REFRESH, SOA_RETRY};

/// The BIND zone file template; see [`render_zone_file`].
const ZONE_TEMPLATE: &str = include_str!("../../templates/reverse.zone");

/// Renders each reverse zone as a BIND-style zone file (`$ORIGIN`, `$TTL`,
/// SOA, NS, PTRs), from `templates/reverse.zone`. Returns (origin, text)
/// pairs, IPv4 zones first, in address order; NSD and Knot read the same
/// format.
pub fn render_zone_file(data: &ZoneData) -> Vec<(String, String)> {
    let ttl = data.ttl.to_string();
    let serial = data.serial.to_string();
    let refresh = SOA_REFRESH.to_string();
    let retry = SOA_RETRY.to_string();
    let expire = SOA_EXPIRE.to_string();
    let mname = data.nameserver.to_ascii();
    let rname = data.hostmaster.to_ascii();
    data.zones
        .iter()
        .map(|zone| {
            let origin = zone.origin.to_ascii();
            let suffix = format!(".{origin}");
            let records = zone
                .entries
                .iter()
                .map(|&index| {
                    let owner = data.owners[index].to_ascii();
                    let relative = owner.strip_suffix(&suffix).unwrap_or(&owner);
                    format!(
                        "{relative}\tIN\tPTR\t{target}\t; {address}",
                        target = data.targets[index].to_ascii(),
                        address = data.entries[index].address,
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let text = crate::template::render(
                ZONE_TEMPLATE,
                &[
                    ("origin", &origin),
                    ("ttl", &ttl),
                    ("mname", &mname),
                    ("rname", &rname),
                    ("serial", &serial),
                    ("refresh", &refresh),
                    ("retry", &retry),
                    ("expire", &expire),
                    ("minimum", &ttl),
                    ("records", &records),
                ],
            );
            (origin, text)
        })
        .collect()
}
