//! The release artifacts of scripts/package.sh on Debian 11 (glibc 2.31):
//! the binary's version needs, then the binary and the .deb in a fresh
//! bullseye root file system (scripts/debian11-rootfs.sh: debootstrap from
//! Debian's mirror, cached under /var/cache/troll-tests). The root is the
//! read-only lower layer of an overlay mounted in a private mount
//! namespace, so every run starts from the same fresh system and the cache
//! stays as built. Nothing runs that touches a firewall: `serve --dry-run`
//! only prints its rules.
//!
//! The artifacts come from `$TROLL_DIST_DIR` (scripts/test.sh runs
//! package.sh first and sets it) or target/dist.

use std::path::PathBuf;
use std::process::Command;

fn dist_dir() -> PathBuf {
    let dir = std::env::var_os("TROLL_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dist"));
    assert!(
        dir.join("SHA256SUMS").exists(),
        "no release artifacts in {}; run scripts/package.sh first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

fn deb(dir: &std::path::Path) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let path = dir.join(format!("troll_{version}-1_amd64.deb"));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn release_binary_needs_nothing_above_glibc_2_17() {
    let dir = dist_dir();
    let binary = dir.join("troll");
    let versions = output(
        Command::new("readelf")
            .args(["--version-info", "--wide"])
            .arg(&binary),
    );
    assert!(
        !versions.contains("GLIBC_ABI_DT_RELR"),
        "packed relocations need glibc 2.36:\n{versions}"
    );
    let mut newest = (0u32, 0u32);
    let symbols = output(Command::new("objdump").arg("-T").arg(&binary));
    for word in symbols
        .split_whitespace()
        .chain(versions.split_whitespace())
    {
        let word = word
            .trim_start_matches("Name:")
            .trim_matches(|c| c == '(' || c == ')');
        let Some(v) = word.strip_prefix("GLIBC_") else {
            continue;
        };
        let mut parts = v.split('.').map(|p| p.parse::<u32>());
        if let (Some(Ok(a)), Some(Ok(b))) = (parts.next(), parts.next()) {
            newest = newest.max((a, b));
        }
    }
    assert!(newest >= (2, 2), "no GLIBC versions found:\n{symbols}");
    assert!(newest <= (2, 17), "needs GLIBC_{}.{}", newest.0, newest.1);
    // Stripped, with the debug info beside it.
    let sections = output(
        Command::new("readelf")
            .args(["--sections", "--wide"])
            .arg(&binary),
    );
    assert!(
        !sections.contains(".debug_info") && !sections.contains(".symtab"),
        "{sections}"
    );
    assert!(sections.contains(".gnu_debuglink"), "{sections}");
    assert!(dir.join("troll.debug").exists());
    // Every artifact is in SHA256SUMS and matches.
    let sums = output(
        Command::new("sha256sum")
            .arg("--check")
            .arg("SHA256SUMS")
            .current_dir(&dir),
    );
    for name in ["troll:", "troll.debug:", ".tar.gz:", "_amd64.deb:"] {
        assert!(sums.contains(name), "{name} not in SHA256SUMS:\n{sums}");
    }
}

#[test]
fn binary_and_deb_work_on_debian_11() {
    assert!(
        troll::lab::is_root(),
        "the Debian 11 test mounts and chroots and needs root; run ./scripts/test.sh as root"
    );
    let dir = dist_dir();
    let deb = deb(&dir);
    let root = output(&mut Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/debian11-rootfs.sh"
    )));
    let root = root.trim().lines().last().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir(w.join(d)).unwrap();
    }
    // The commands run inside Debian 11; each prints a marker the test reads.
    let inside = r#"set -eu
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive
echo "libc: $(getconf GNU_LIBC_VERSION)"
T=/tmp/troll-dist/troll
echo "version: $($T --version)"
$T preview "$(printf 'Hello from\nDebian 11\nthe target')" > /tmp/preview.out
echo "preview: $(grep -c Hello.from /tmp/preview.out)"
$T serve --dry-run --target 203.0.113.10 --hops 198.51.100.1,198.51.100.2 > /tmp/serve.out
echo "serve: $(grep -c -- '--ttl-lt 3' /tmp/serve.out)"
$T --state-dir /tmp/state provision --provider static --target 203.0.113.10 --hop-address 198.51.100.1,198.51.100.2 >/dev/null
$T --state-dir /tmp/state set-message "$(printf 'Zone.One\nZone.Two\nZone.Target')" >/dev/null
$T --state-dir /tmp/state zone > /tmp/zone.out
echo "zone: $(grep -c 'PTR' /tmp/zone.out)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends /tmp/troll-dist/*.deb >/tmp/apt.out 2>&1 || { cat /tmp/apt.out; exit 1; }
dpkg-query -W -f='installed: ${Package} ${Status}\n' troll iptables iproute2
echo "packaged: $(/usr/bin/troll --version)"
for f in /usr/share/man/man1/troll.1.gz /usr/share/bash-completion/completions/troll \
  /usr/share/zsh/vendor-completions/_troll /usr/share/fish/vendor_completions.d/troll.fish \
  /lib/systemd/system/troll@.service; do
  [ -s "$f" ] && echo "file: $f"
done
command -v iptables >/dev/null && echo "iptables: yes"
"#;
    let inside = format!("'{}'", inside.replace('\'', r"'\''"));
    let script = format!(
        r#"set -eu
m={merged}
mount -t overlay overlay -o lowerdir={root},upperdir={upper},workdir={work} "$m"
mount -t proc proc "$m/proc"
mount --rbind /dev "$m/dev"
mkdir -p "$m/tmp/troll-dist"
cp {dist}/troll {deb} "$m/tmp/troll-dist/"
cp /etc/resolv.conf "$m/etc/resolv.conf"
exec chroot "$m" /bin/sh -c {inside}
"#,
        merged = w.join("merged").display(),
        upper = w.join("upper").display(),
        work = w.join("work").display(),
        dist = dir.display(),
        deb = deb.display(),
    );
    let out = output(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(&script),
    );
    let version = env!("CARGO_PKG_VERSION");
    for expect in [
        "libc: glibc 2.31".to_string(),
        format!("version: troll {version}"),
        "preview: 1".into(),
        "serve: ".into(),
        "zone: ".into(),
        "installed: troll install ok installed".into(),
        "installed: iptables install ok installed".into(),
        "installed: iproute2 install ok installed".into(),
        format!("packaged: troll {version}"),
        "file: /usr/share/man/man1/troll.1.gz".into(),
        "file: /usr/share/bash-completion/completions/troll".into(),
        "file: /usr/share/zsh/vendor-completions/_troll".into(),
        "file: /usr/share/fish/vendor_completions.d/troll.fish".into(),
        "file: /lib/systemd/system/troll@.service".into(),
        "iptables: yes".into(),
    ] {
        assert!(out.contains(&expect), "missing {expect:?}:\n{out}");
    }
    for zero in ["serve: 0", "zone: 0", "preview: 0"] {
        assert!(!out.contains(&format!("{zero}\n")), "{zero}:\n{out}");
    }
    // The cache is untouched: nothing was installed into it.
    assert!(!std::path::Path::new(&root).join("usr/bin/troll").exists());
}
