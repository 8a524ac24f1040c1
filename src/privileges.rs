//! Dropping privileges once `troll serve` is set up.
//!
//! After the sockets are open and the rules applied, the responder only
//! needs CAP_NET_ADMIN (to change its own chains on reload and remove them
//! on exit; the `iptables` it runs inherits it) and CAP_NET_RAW (which the
//! open sockets no longer need, but `iptables` does for some matches). Every
//! other capability goes: from the bounding set when we may (root), and
//! from the permitted, effective and inheritable sets always.

/// CAP_NET_ADMIN and CAP_NET_RAW (linux/capability.h).
pub const KEEP: [u32; 2] = [12, 13];

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Keeps only [`KEEP`]; says what it did in one line.
pub fn drop_all_but_net() -> Result<String, std::io::Error> {
    let keep_mask: u64 = KEEP.iter().map(|c| 1u64 << c).sum();
    let mut bounding_dropped = true;
    for cap in 0..=last_cap() {
        if KEEP.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
            // Without CAP_SETPCAP (not root) the bounding set stays; the
            // permitted set below is what limits us then.
            bounding_dropped = false;
            break;
        }
    }
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a valid header and room for two data structs.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for (i, d) in data.iter_mut().enumerate() {
        let mask = (keep_mask >> (32 * i)) as u32;
        d.effective &= mask;
        d.permitted &= mask;
        d.inheritable &= mask;
    }
    // SAFETY: capset with a valid header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(format!(
        "dropped privileges: keeping only CAP_NET_ADMIN and CAP_NET_RAW{}",
        if bounding_dropped {
            ""
        } else {
            " (bounding set left to the service manager)"
        }
    ))
}
