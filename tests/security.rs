//! Escape probes: a workload inside a real sandbox tries what an attacker
//! would, and every attempt must fail, in closure mode and in host mode.
//!
//! Each probe asserts on what happened inside (an exit status or output),
//! never on config.json. Where gVisor already stops a probe on its own the
//! probe stays: it guards against a change in nucleus's configuration or in
//! the runtime. SECURITY.md names the test behind each claim.
//!
//! Scripts run the probes through a small shell function `t NAME CMD…`,
//! which prints one line `probe NAME status=N out=…` per probe, so that a
//! failure names the probe and shows what it printed. In closure mode the
//! applets come from the closure's /bin; in host mode from the host's
//! busybox (`$B` is `busybox` there: the host's GNU tools fail with statx
//! EINVAL under this gVisor). `NUCLEUS_PROBE_LOG=1 cargo test --test
//! security -- --nocapture` prints every probe's result.
//!
//! Besides the workload, the probes play the two other adversaries of
//! SECURITY.md: a hostile closure (store paths that are symlinks) and an
//! unprivileged local user (`nucleus-ci`, which `.ci/run` creates) who owns
//! directories root hands to nucleus and races it there. The regression cases
//! for the parsers of untrusted input live in `tests/parsers.rs`, next to
//! the fuzz targets in `fuzz/`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;

// ---------------------------------------------------------------------------
// The harness for probes.

/// Where a probe runs.
#[derive(Clone, Debug)]
enum Mode {
    /// `nucleus run CLOSURE -- /bin/sh -c …`
    Closure(PathBuf),
    /// `nucleus run -- /bin/busybox sh -c …` (no installable).
    Host,
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Closure(_) => "closure mode",
            Mode::Host => "host mode",
        }
    }
}

/// Closure mode with `tests/closures/NAME.nix`, then host mode.
fn both_modes(name: &str) -> [Mode; 2] {
    [Mode::Closure(closure(name)), Mode::Host]
}

/// Defines `t NAME CMD…`: runs CMD with eval in a subshell, stdin closed,
/// and prints its status and the first 300 bytes of its output on one line.
const PREAMBLE: &str = r#"t() { n=$1; shift; o=$( (eval "$*") 2>&1 </dev/null ); s=$?; printf 'probe %s status=%s out=%s\n' "$n" "$s" "$(printf %s "$o" | $B tr '\n' ' ' | $B head -c 300)"; }
"#;

/// The `nucleus run` command for `script` in `mode`, with `opts` before
/// the installable.
fn probe_command(w: &World, mode: &Mode, opts: &[&str], script: &str) -> Command {
    let mut cmd = w.nucleus();
    cmd.arg("run").args(opts);
    match mode {
        Mode::Closure(path) => {
            cmd.arg(path).args(["--", "/bin/sh", "-c"]).arg(format!("B=\n{PREAMBLE}{script}"));
        }
        Mode::Host => {
            cmd.args(["--", "/bin/busybox", "sh", "-c"]).arg(format!("B=busybox\n{PREAMBLE}{script}"));
        }
    }
    cmd
}

fn run_probes(w: &World, mode: &Mode, opts: &[&str], script: &str) -> Probes {
    let out = probe_command(w, mode, opts, script).output().unwrap();
    Probes::parse(mode, &out)
}

/// The probes' results from one run.
struct Probes {
    mode: &'static str,
    stdout: String,
    results: BTreeMap<String, (i32, String)>,
}

impl Probes {
    #[track_caller]
    fn parse(mode: &Mode, out: &Output) -> Probes {
        // The script itself must have run to its end: nucleus exits with
        // the last probe line's printf status, 0.
        let stdout = ok(out);
        if std::env::var_os("NUCLEUS_PROBE_LOG").is_some() {
            eprintln!("--- {}:\n{stdout}", mode.name());
        }
        let mut results = BTreeMap::new();
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("probe ") else { continue };
            let (name, rest) = rest.split_once(" status=").unwrap();
            let (status, text) = rest.split_once(" out=").unwrap();
            results.insert(name.to_string(), (status.parse().unwrap(), text.trim_end().to_string()));
        }
        Probes { mode: mode.name(), stdout, results }
    }

    #[track_caller]
    fn get(&self, name: &str) -> &(i32, String) {
        self.results.get(name).unwrap_or_else(|| panic!("{}: probe {name} did not run:\n{}", self.mode, self.stdout))
    }

    /// The attempt failed (non-zero status).
    #[track_caller]
    fn refused(&self, name: &str) -> &str {
        let (status, text) = self.get(name);
        assert_ne!(*status, 0, "{}: probe {name} SUCCEEDED: {text}", self.mode);
        text
    }

    /// The attempt failed and said something containing `why`.
    #[track_caller]
    fn refused_with(&self, name: &str, why: &str) {
        let text = self.refused(name);
        assert!(text.contains(why), "{}: probe {name} failed, but not with '{why}': {text}", self.mode);
    }

    /// A control step that must work, or the probes after it prove nothing.
    #[track_caller]
    fn worked(&self, name: &str) -> &str {
        let (status, text) = self.get(name);
        assert_eq!(*status, 0, "{}: control step {name} failed: {text}", self.mode);
        text
    }
}

/// The host's own host name.
fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

// ---------------------------------------------------------------------------
// Probes.

#[test]
fn mounting_anything_fails() {
    let w = World::new();
    let script = r#"
        $B mkdir -p /tmp/m
        t tmpfs '$B mount -t tmpfs none /tmp/m'
        t proc '$B mount -t proc proc /tmp/m'
        t sysfs '$B mount -t sysfs sysfs /tmp/m'
        t bind-bin '$B mount -o bind /bin /tmp/m'
        t rbind-root '$B mount -o rbind / /tmp/m'
        t remount-root-rw '$B mount -o remount,rw /'
        t remount-store-rw '$B mount -o remount,rw /nix/store'
        t remount-tmp-exec '$B mount -o remount,exec,suid,dev /tmp'
        t nothing-mounted '$B grep " /tmp/m " /proc/self/mountinfo'
    "#;
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &[], script);
        for probe in [
            "tmpfs",
            "proc",
            "sysfs",
            "bind-bin",
            "rbind-root",
            "remount-root-rw",
            "remount-store-rw",
            "remount-tmp-exec",
        ] {
            p.refused_with(probe, "denied");
        }
        p.refused("nothing-mounted");
    }
    w.assert_clean();
}

#[test]
fn device_nodes_reach_no_host_disk_or_memory() {
    let w = World::new();
    // The host's own root disk, by number, as a workload that knows the
    // machine would try it.
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let script = format!(
        r#"
        t dev-mem-absent '$B dd if=/dev/mem of=/dev/null bs=1 count=1'
        t host-root-disk '$B mknod /tmp/root b {major} {minor}; $B dd if=/tmp/root of=/dev/null bs=512 count=1'
        t sda '$B mknod /tmp/sda b 8 0; $B dd if=/tmp/sda of=/dev/null bs=512 count=1'
        t vda '$B mknod /tmp/vda b 253 0; $B dd if=/tmp/vda of=/dev/null bs=512 count=1'
        t nvme '$B mknod /tmp/nvme b 259 0; $B dd if=/tmp/nvme of=/dev/null bs=512 count=1'
        t dev-mem '$B mknod /dev/mem c 1 1; $B dd if=/dev/mem of=/dev/null bs=1 count=1'
        t tmp-mem '$B mknod /tmp/mem c 1 1; $B dd if=/tmp/mem of=/dev/null bs=1 count=1'
        t shm-kmem '$B mknod /dev/shm/kmem c 1 2; $B dd if=/dev/shm/kmem of=/dev/null bs=1 count=1'
        t port '$B mknod /tmp/port c 1 4; $B dd if=/tmp/port of=/dev/null bs=1 count=1'
        t kmsg '$B mknod /tmp/kmsg c 1 11; $B dd if=/tmp/kmsg of=/dev/null bs=1 count=1'
        "#
    );
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &[], &script);
        p.refused("dev-mem-absent");
        for probe in ["host-root-disk", "sda", "vda", "nvme", "dev-mem", "tmp-mem", "shm-kmem", "port", "kmsg"] {
            p.refused_with(probe, "can't open");
        }
    }
    w.assert_clean();
}

/// gVisor (this build) lets a capability-less root mknod on a tmpfs, and
/// does not enforce `nodev`: a node for one of gVisor's own devices, made
/// in /tmp, opens. No such node reaches the host (see the test above: gVisor
/// has no driver behind any other number), so this is a deviation from the
/// documented `nodev`, not an escape.
#[test]
#[ignore = "gVisor 20221219 allows mknod without CAP_MKNOD and ignores nodev on tmpfs; nodes reach only gVisor's own synthetic devices"]
fn scratch_space_refuses_device_nodes() {
    let w = World::new();
    let script = r#"
        t mknod-tmp '$B mknod /tmp/null c 1 3 && echo x > /tmp/null'
        t mknod-shm '$B mknod /dev/shm/zero c 1 5 && $B head -c 1 /dev/shm/zero'
    "#;
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &[], script);
        p.refused("mknod-tmp");
        p.refused("mknod-shm");
    }
    w.assert_clean();
}

#[test]
fn root_store_and_proc_sys_are_not_writable() {
    let w = World::new();
    let hello = closure("hello");
    let h = hello.display();
    // The hello path is in the closure and, in host mode, in the host's
    // store: the same probes run in both.
    let script = format!(
        r#"
        t write-root 'echo x > /probe'
        t mkdir-root '$B mkdir /probe'
        t write-bin 'echo x > /bin/probe'
        t write-etc 'echo x > /etc/probe'
        t write-store 'echo x > /nix/store/probe'
        t write-store-path 'echo x > {h}/probe'
        t append-store-file 'echo x >> {h}/etc/motd'
        t rm-store-file '$B rm -f {h}/etc/motd'
        t touch-store-file '$B touch {h}/etc/motd'
        t chmod-store-file '$B chmod 4777 {h}/etc/motd'
        t chmod-store-exec '$B chmod 6777 {h}/bin/sh'
        t chmod-store-dir '$B chmod 777 {h}'
        t proc-sys-hostname 'echo evil > /proc/sys/kernel/hostname'
        t proc-sys-drop-caches 'echo 1 > /proc/sys/vm/drop_caches'
        t proc-sysrq 'echo h > /proc/sysrq-trigger'
        t sys-create 'echo x > /sys/probe'
        t motd-intact '$B cat {h}/etc/motd'
        t motd-mode '$B stat -L -c %a {h}/etc/motd'
        t sh-mode '$B stat -L -c %a {h}/bin/sh'
        t hostname-intact '$B hostname'
        "#
    );
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &[], &script);
        for probe in ["write-root", "mkdir-root", "write-bin", "write-etc", "write-store", "write-store-path"] {
            p.refused(probe);
        }
        for probe in ["append-store-file", "rm-store-file", "touch-store-file"] {
            p.refused(probe);
        }
        for probe in ["chmod-store-file", "chmod-store-exec", "chmod-store-dir"] {
            p.refused_with(probe, "Read-only file system");
        }
        for probe in ["proc-sys-hostname", "proc-sys-drop-caches", "proc-sysrq", "sys-create"] {
            p.refused(probe);
        }
        assert_eq!(p.worked("motd-intact"), "nucleus test closure", "{}", p.mode);
        assert_eq!(p.worked("motd-mode"), "444", "{}", p.mode);
        assert_eq!(p.worked("sh-mode"), "555", "{}", p.mode);
        assert_eq!(p.worked("hostname-intact"), "nucleus", "{}", p.mode);
    }
    // And nothing changed on the host either.
    assert_eq!(std::fs::read_to_string(hello.join("etc/motd")).unwrap(), "nucleus test closure\n");
    assert_eq!(std::fs::metadata(hello.join("etc/motd")).unwrap().permissions().mode() & 0o7777, 0o444);
    assert!(!hello.join("probe").exists());
    w.assert_clean();
}

#[test]
fn host_files_kernel_memory_and_the_nix_daemon_are_unreachable() {
    let w = World::new();
    let state = w.state_root();
    let state = state.display();
    let script = format!(
        r#"
        t proc1-root-hostname '$B cat /proc/1/root/etc/hostname'
        t proc1-root-shadow '$B cat /proc/1/root/etc/shadow'
        t proc-self-root-dotdot '$B cat /proc/self/root/../../../etc/hostname'
        t proc1-cwd '$B ls /proc/1/cwd/root'
        t etc-hostname '$B cat /etc/hostname'
        t etc-shadow '$B cat /etc/shadow'
        t root-home '$B ls /root'
        t home '$B ls /home'
        t var '$B ls /var'
        t kcore '$B head -c 1 /proc/kcore'
        t kallsyms '$B head -c 1 /proc/kallsyms'
        t nix-var '$B ls /nix/var'
        t nix-daemon-socket '$B test -e /nix/var/nix/daemon-socket/socket'
        t nix-db '$B head -c 16 /nix/var/nix/db/db.sqlite'
        t nix-db-parent '$B ls /nix/var/nix/db'
        t state-root '$B ls {state}'
        "#
    );
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &[], &script);
        for probe in [
            "proc1-root-hostname",
            "proc1-root-shadow",
            "proc-self-root-dotdot",
            "proc1-cwd",
            "etc-hostname",
            "etc-shadow",
            "root-home",
            "home",
            "var",
            "kcore",
            "kallsyms",
            "nix-var",
            "nix-daemon-socket",
            "nix-db",
            "nix-db-parent",
            "state-root",
        ] {
            p.refused(probe);
        }
    }
    w.assert_clean();
}

#[test]
fn host_processes_are_invisible_and_no_capability_is_held() {
    let w = World::new();
    let our_pid = std::process::id();
    // The test binary's name as the kernel shows it (15 bytes at most).
    let our_comm = std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string();
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap().trim().to_string();
    let script = format!(
        r#"
        for p in /proc/[0-9]*; do echo "pid ${{p#/proc/}} $($B cat $p/comm 2>/dev/null)"; done
        $B ps | while read pid rest; do echo "ps $pid"; done
        t our-pid '$B grep -qx "{our_comm}" /proc/{our_pid}/comm'
        t signal-our-pid '$B kill -0 {our_pid}'
        $B grep -E '^Cap' /proc/self/status
        "#
    );
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &[], &script);
        let out = &p.stdout;
        let procs: Vec<(u32, &str)> = out
            .lines()
            .filter_map(|l| l.strip_prefix("pid "))
            .map(|l| {
                let (pid, comm) = l.split_once(' ').unwrap_or((l, ""));
                (pid.parse().unwrap(), comm)
            })
            .collect();
        // The shell, its subshells and the applets it runs: a handful.
        assert!(!procs.is_empty() && procs.len() < 16, "{}: {procs:?}", p.mode);
        assert!(procs.iter().all(|(pid, _)| *pid < 100), "{}: host-sized pids {procs:?}", p.mode);
        assert!(procs.iter().all(|(_, comm)| *comm != our_comm), "{}: the test process is visible: {procs:?}", p.mode);
        if !["sh", "busybox", "cat", "ps", "sed"].contains(&host_init.as_str()) {
            assert!(procs.iter().all(|(_, comm)| *comm != host_init), "{}: host init visible: {procs:?}", p.mode);
        }
        let ps: Vec<u32> = out
            .lines()
            .filter_map(|l| l.strip_prefix("ps "))
            .filter(|p| *p != "PID")
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(!ps.is_empty() && ps.len() < 16 && ps.iter().all(|pid| *pid < 100), "{}: ps shows {ps:?}", p.mode);
        if our_pid >= 100 {
            assert!(procs.iter().all(|(pid, _)| *pid != our_pid), "{}: {procs:?}", p.mode);
        }
        p.refused("our-pid");
        p.refused("signal-our-pid");
        // gVisor shows no CapAmb line; the four sets it shows must be empty.
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd"] {
            let line =
                out.lines().find(|l| l.starts_with(set)).unwrap_or_else(|| panic!("{}: {set} missing:\n{out}", p.mode));
            assert!(line.ends_with("0000000000000000"), "{}: {line}", p.mode);
        }
        assert!(
            out.lines().filter(|l| l.starts_with("Cap")).all(|l| l.ends_with("0000000000000000")),
            "{}:\n{out}",
            p.mode
        );
    }
    w.assert_clean();
}

#[test]
fn scratch_space_is_noexec_and_bounded() {
    let w = World::new();
    let hello = closure("hello");
    // busybox itself (bin/sh resolves to it), copied and made executable.
    let script = format!(
        r#"
        t copy-tmp '$B cp {sh} /tmp/bb && $B chmod 755 /tmp/bb'
        t exec-tmp '/tmp/bb true'
        t exec-tmp-applet '/tmp/bb echo ran'
        t copy-shm '$B cp {sh} /dev/shm/bb && $B chmod 755 /dev/shm/bb'
        t exec-shm '/dev/shm/bb true'
        t fill-tmp '$B dd if=/dev/zero of=/tmp/fill bs=1M count=100'
        t filled-tmp '$B stat -c %s /tmp/fill'
        $B rm -f /tmp/fill /tmp/bb
        t fill-shm '$B dd if=/dev/zero of=/dev/shm/fill bs=1M count=100'
        t filled-shm '$B stat -c %s /dev/shm/fill'
        "#,
        sh = hello.join("bin/sh").display()
    );
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &[], &script);
        p.worked("copy-tmp");
        p.worked("copy-shm");
        for probe in ["exec-tmp", "exec-tmp-applet", "exec-shm"] {
            p.refused_with(probe, "Permission denied");
            assert_eq!(p.get(probe).0, 126, "{}: {probe}", p.mode);
        }
        assert!(!p.stdout.contains("out=ran"), "{}", p.stdout);
        for (fill, filled) in [("fill-tmp", "filled-tmp"), ("fill-shm", "filled-shm")] {
            p.refused_with(fill, "No space left on device");
            let size: u64 = p.worked(filled).parse().unwrap();
            assert!(size <= 64 << 20, "{}: {filled} {size}", p.mode);
        }
    }
    w.assert_clean();
}

#[test]
fn host_name_and_environment_stay_outside() {
    let w = World::new();
    let host = host_hostname();
    let script = r#"
        t hostname '$B hostname'
        t uname '$B uname -n'
        t proc-hostname '$B cat /proc/sys/kernel/hostname'
        t set-hostname '$B hostname evil'
        t hostname-after '$B hostname'
        t env '$B env'
        t self-environ '$B tr "\0" " " < /proc/self/environ'
        t init-environ '$B tr "\0" " " < /proc/1/environ'
    "#;
    for mode in both_modes("hello") {
        let out = probe_command(&w, &mode, &[], script).env("SECRET_TOKEN", "hunter2").output().unwrap();
        let p = Probes::parse(&mode, &out);
        for probe in ["hostname", "uname", "proc-hostname", "hostname-after"] {
            assert_eq!(p.worked(probe), "nucleus", "{}: {probe}", p.mode);
        }
        if host != "nucleus" {
            assert!(!p.stdout.contains(&format!("out={host}\n")), "{}: host name seen:\n{}", p.mode, p.stdout);
        }
        p.refused("set-hostname");
        // Nothing of nucleus's own environment: neither the secret nor what
        // the harness sets (NIX_CONFIG, NUCLEUS_STATE_ROOT).
        for probe in ["env", "self-environ", "init-environ"] {
            let text = p.worked(probe);
            for leak in ["SECRET_TOKEN", "hunter2", "NIX_CONFIG", "NUCLEUS_STATE_ROOT", "substituters"] {
                assert!(!text.contains(leak), "{}: {probe} shows {leak}: {text}", p.mode);
            }
        }
    }
    w.assert_clean();
}

#[test]
fn raw_sockets_and_kernel_controls_are_refused() {
    let w = World::new();
    let script = r#"
        t ping '$B ping -c 1 -W 1 127.0.0.1'
        t arping '$B arping -c 1 -w 1 -I lo 127.0.0.1'
        t traceroute '$B traceroute -m 1 -w 1 127.0.0.1'
        t ip-link-add '$B ip link add probe0 type dummy'
        t ifconfig-lo-down '$B ifconfig lo down'
        t devmem '$B devmem 0x1000'
        t sysctl '$B sysctl -w kernel.hostname=evil'
        t chroot '$B chroot /tmp /bin/true'
        t unshare-mount '$B unshare -m true'
        t unshare-user-mount '$B unshare -U -m $B mount -t tmpfs none /tmp && echo MOUNTED'
        t umount-tmp '$B umount /tmp'
        t umount-store '$B umount -l /nix/store'
        t dmesg '$B dmesg'
    "#;
    for mode in both_modes("probes") {
        let p = run_probes(&w, &mode, &[], script);
        p.refused_with("ping", "permission denied");
        assert!(!p.get("ping").1.contains("bytes from"), "{}", p.stdout);
        p.refused_with("arping", "Operation not permitted");
        p.refused_with("traceroute", "Operation not permitted");
        for probe in [
            "ip-link-add",
            "ifconfig-lo-down",
            "devmem",
            "sysctl",
            "chroot",
            "unshare-mount",
            "umount-tmp",
            "umount-store",
        ] {
            p.refused(probe);
        }
        p.refused("unshare-user-mount");
        assert!(!p.stdout.contains("MOUNTED"), "{}", p.stdout);
        // The kernel log is gVisor's invention, not the host's.
        let dmesg = &p.get("dmesg").1;
        assert!(!dmesg.contains("Linux version") && !dmesg.contains("Command line:"), "{}: {dmesg}", p.mode);
    }
    w.assert_clean();
}

/// `nc` to 127.0.0.1:PORT, where the host listens; then, as a control, the
/// same through the sandbox's own loopback, where the script listens again
/// after each connection: the control sends until its listener got it,
/// however slow the machine is.
fn loopback_script(port: u16) -> String {
    format!(
        r#"
        t host-listener 'echo escaped | $B nc -w 2 127.0.0.1 {port}'
        ($B sh -c "while :; do $B nc -l -p {port} >> /tmp/got; done" &)
        t own-listener 'for i in $($B seq 50); do echo inside | $B nc -w 1 127.0.0.1 {port}; [ -s /tmp/got ] && exit 0; $B sleep 0.2; done; exit 1'
        t own-listener-got '$B head -n 1 /tmp/got'
        "#
    )
}

#[test]
fn a_server_on_the_hosts_loopback_is_unreachable() {
    let w = World::new();
    // Loopback only: the workload must not reach it over any address.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = loopback_script(port);
    for mode in both_modes("hello") {
        for net in [&[][..], &["--network", "none"], &["--network", "sandbox"]] {
            let p = run_probes(&w, &mode, net, &script);
            p.refused_with("host-listener", "can't connect");
            // The control: nc works, and 127.0.0.1 inside is the sandbox's
            // own. Host mode with --network sandbox has no loopback at all
            // (see the ignored test below), so there is nothing to control.
            if matches!(mode, Mode::Closure(_)) || net.is_empty() || net[1] != "sandbox" {
                p.worked("own-listener");
                assert_eq!(p.worked("own-listener-got"), "inside", "{} {net:?}", p.mode);
            }
        }
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the sandbox reached the host's loopback listener from {peer}"),
        Err(e) => panic!("accept: {e}"),
    }
    w.assert_clean();
}

/// Host mode with `--network sandbox` gets runsc's own fresh network
/// namespace, whose loopback is down, instead of the one nucleus prepared:
/// src/oci/build.rs joins the prepared namespace only for the store-view
/// layout. It fails closed (no network at all), but it is not what
/// `--network sandbox` promises.
#[test]
fn host_mode_sandbox_network_has_its_own_loopback() {
    let w = World::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = run_probes(&w, &Mode::Host, &["--network", "sandbox"], &loopback_script(port));
    p.refused("host-listener");
    p.worked("own-listener");
    assert_eq!(p.worked("own-listener-got"), "inside");
    w.assert_clean();
}

#[test]
fn a_setuid_file_in_a_volume_grants_nothing() {
    let w = World::new();
    let vol = w.tmp.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o755)).unwrap();
    let busybox = which("busybox").unwrap().canonicalize().unwrap();
    let file = vol.join("busybox");
    std::fs::copy(&busybox, &file).unwrap();
    std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o4755);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);
    // Symlinks in a volume that point at the host's files resolve inside
    // the sandbox (gVisor walks them), never to the host's.
    std::os::unix::fs::symlink("/etc", vol.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", vol.join("shadow")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", vol.join("up")).unwrap();
    // busybox drops a setuid identity itself for most applets, so `id -u`
    // alone proves little; `crontab` is one it keeps setuid for, and without
    // an effective root it says "must be suid to work properly".
    let script = r#"
        t mode '$B stat -c "%a %u" /vol/busybox'
        t id '/vol/busybox id -u'
        t crontab '/vol/busybox crontab -l'
        t crontab-rw '/volrw/busybox crontab -l'
        t mount '/vol/busybox mount -t tmpfs none /tmp'
        t link-etc '$B cat /vol/etc/hostname'
        t link-shadow '$B cat /vol/shadow'
        t link-up '$B cat /vol/up/etc/hostname'
    "#;
    let ro = format!("{}:/vol", vol.display());
    let rw = format!("{}:/volrw:rw", vol.display());
    for mode in both_modes("hello") {
        let p = run_probes(&w, &mode, &["-v", &ro, "-v", &rw, "--user", "1000:1000"], script);
        assert_eq!(p.worked("mode"), "4755 0", "{}: the probe needs a setuid-root file", p.mode);
        assert_eq!(p.worked("id"), "1000", "{}", p.mode);
        p.refused_with("crontab", "must be suid");
        p.refused_with("crontab-rw", "must be suid");
        p.refused("mount");
        for probe in ["link-etc", "link-shadow", "link-up"] {
            p.refused(probe);
        }
    }
    w.assert_clean();
}

/// A volume directory on the host, `mode`, owned by root, and the options
/// that show it read-write at /vol.
fn writable_volume(w: &World, name: &str) -> (PathBuf, String) {
    let dir = w.tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opt = format!("{}:/vol:rw", dir.display());
    (dir, opt)
}

/// Every entry under `dir`, with its metadata (symlinks not followed).
fn entries(dir: &std::path::Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            out.extend(entries(&entry.path()));
        }
        out.push((entry.path(), meta));
    }
    out
}

#[test]
fn a_writable_volume_takes_no_device_node() {
    use std::os::unix::fs::FileTypeExt;
    let w = World::new();
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let script = format!(
        r#"
        t disk '$B mknod /vol/disk b {major} {minor}'
        t mem '$B mknod /vol/mem c 1 1'
        t control '$B touch /vol/written'
        "#
    );
    for mode in both_modes("hello") {
        let (dir, opt) = writable_volume(&w, &format!("rw-{}", mode.name().replace(' ', "-")));
        let p = run_probes(&w, &mode, &["-v", &opt], &script);
        p.worked("control");
        assert!(dir.join("written").exists(), "{}: the volume is not the host directory", p.mode);
        p.refused("disk");
        p.refused("mem");
        for (path, meta) in entries(&dir) {
            let kind = meta.file_type();
            assert!(!kind.is_block_device() && !kind.is_char_device(), "{}: device node {path:?} on the host", p.mode);
        }
    }
    w.assert_clean();
}

/// gVisor's gofer creates files in a read-write volume as the workload's
/// uid, which is uid 0 by default, and passes chmod through: without the
/// seccomp guard nucleus adds for writable volumes, root inside could leave
/// a setuid-root executable (or a setgid directory) in the host directory.
#[test]
fn a_writable_volume_cannot_plant_a_setuid_root_file_on_the_host() {
    let w = World::new();
    let hello = closure("hello");
    let script = format!(
        r#"
        t copy '$B cp {sh} /vol/bb'
        t setuid '$B chmod 4755 /vol/bb'
        t setgid-dir '$B mkdir /vol/d && $B chmod 2777 /vol/d'
        "#,
        sh = hello.join("bin/sh").display()
    );
    for mode in both_modes("hello") {
        let (dir, opt) = writable_volume(&w, &format!("rw-{}", mode.name().replace(' ', "-")));
        let p = run_probes(&w, &mode, &["-v", &opt], &script);
        p.worked("copy");
        for (path, meta) in entries(&dir) {
            assert_eq!(
                meta.mode() & 0o6000,
                0,
                "{}: {path:?} is {:o}, owner {}, on the host",
                p.mode,
                meta.mode(),
                meta.uid()
            );
        }
    }
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// A hostile closure: store paths that are symlinks.

/// `nix-store --add` of a symlink named `nucleus-added-link` pointing at
/// the host's `/etc/hostname`, made in this world's directory.
fn added_store_link(w: &World) -> String {
    let dir = w.path("add");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("nucleus-added-link");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    let out =
        Command::new(nix_bin("nix-store")).arg("--add").arg(&link).env("NIX_CONFIG", NIX_CONFIG).output().unwrap();
    let path = ok(&out).trim().to_string();
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "{path} is not a symlink");
    path
}

/// The closure of `tests/closures/symlinks.nix` whose top level is `which`.
fn symlinks_closure(which: &str, added: Option<&str>) -> PathBuf {
    let which = format!("\"{which}\"");
    let added = added.map(|a| format!("\"{a}\""));
    let mut args = vec![("which", which.as_str())];
    args.extend(added.as_deref().map(|a| ("added", a)));
    // The decoy must exist on the host for a link to it to be worth following.
    closure("decoy");
    closure_with("symlinks", &args)
}

/// Probes of every symlink store path the `links` top level lists in its
/// /etc: each resolves inside the sandbox, so nothing of the host's /etc,
/// of its root or of a store path outside the closure is reached through
/// it; `readlink` shows the link as Nix stored it.
const SYMLINK_PROBES: &str = r#"
    for f in to-etc to-shadow to-hostname to-root to-decoy added; do
        p=$($B cat /etc/$f)
        t "$f-readlink" "$B readlink $p"
        t "$f-self" "$B cat $p"
        t "$f-hostname" "$B cat $p/hostname"
        t "$f-shadow" "$B cat $p/shadow"
        t "$f-passwd" "$B cat $p/passwd"
        t "$f-etc-hostname" "$B cat $p/etc/hostname"
        t "$f-etc-shadow" "$B cat $p/etc/shadow"
    done
    t root-through-link "$B ls $($B cat /etc/to-root)/"
    t root "$B ls /"
    t decoy-in-store "$B ls -d $($B readlink $($B cat /etc/to-decoy))"
    t added-in-store "$B test -L $($B cat /etc/added)"
"#;

fn assert_symlinks_stay_inside(p: &Probes, decoy: &std::path::Path) {
    let expected_targets = [
        ("to-etc", "/etc".to_string()),
        ("to-shadow", "/etc/shadow".to_string()),
        ("to-hostname", "/etc/hostname".to_string()),
        ("to-root", "../..".to_string()),
        ("to-decoy", decoy.display().to_string()),
        ("added", "/etc/hostname".to_string()),
    ];
    for (link, target) in &expected_targets {
        assert_eq!(p.worked(&format!("{link}-readlink")), target, "{}: {link}", p.mode);
        for through in ["self", "hostname", "shadow", "passwd", "etc-hostname", "etc-shadow"] {
            p.refused(&format!("{link}-{through}"));
        }
    }
    // `../..` from /nix/store is the sandbox's own root.
    assert_eq!(p.worked("root-through-link"), p.worked("root"), "{}", p.mode);
    p.refused("decoy-in-store");
    p.worked("added-in-store");
}

#[test]
fn store_paths_that_are_symlinks_resolve_inside_the_sandbox() {
    let w = World::new();
    let added = added_store_link(&w);
    let links = symlinks_closure("links", Some(&added));
    let decoy = closure("decoy");
    // nucleus run: the store view on nucleus's tmpfs holds the links.
    let mode = Mode::Closure(links.clone());
    let p = run_probes(&w, &mode, &[], SYMLINK_PROBES);
    assert_symlinks_stay_inside(&p, &decoy);
    // nucleus bundle: one bind per store path, the links themselves in
    // rootfs/nix/store, run by runsc and by runc as they are.
    let dir = w.path("bundle");
    let script = format!("B=\n{PREAMBLE}{SYMLINK_PROBES}");
    ok(&w.run(&["bundle", "--out", dir.to_str().unwrap(), links.to_str().unwrap(), "--", "/bin/sh", "-c", &script]));
    let in_rootfs = dir.join("rootfs").join(added.trim_start_matches('/'));
    assert!(std::fs::symlink_metadata(&in_rootfs).unwrap().file_type().is_symlink(), "{in_rootfs:?}");
    let id = format!("nucleus-symlinks-{}", std::process::id());
    let runsc = run_bundle_under("runsc", &w.path("runsc-root"), &["--network=none"], &dir, &id);
    assert_symlinks_stay_inside(&Probes::parse(&mode, &runsc), &decoy);
    let runc = run_bundle_under("runc", &w.path("runc-root"), &[], &dir, &id);
    assert_symlinks_stay_inside(&Probes::parse(&mode, &runc), &decoy);
    w.assert_clean();
}

#[test]
fn a_top_level_leading_out_of_its_closure_through_a_store_link_is_refused() {
    let w = World::new();
    // /etc → the store link to /etc; /bin → the store link to a store path
    // outside the closure; /etc → ../.. through a store link.
    for which in ["etc-link", "bin-decoy", "etc-up"] {
        let top = symlinks_closure(which, None);
        let top = top.to_str().unwrap();
        let out = w.run(&["run", top, "--", "/bin/sh", "-c", "echo ran; cat /etc/hostname"]);
        assert_refused(&out);
        assert!(stderr(&out).contains("cannot become"), "{which}: {}", stderr(&out));
        let dir = w.path(&format!("bundle-{which}"));
        assert_refused(&w.run(&["bundle", "--out", dir.to_str().unwrap(), top, "--", "/bin/true"]));
        assert!(!dir.exists(), "{which}: a refused bundle was left behind");
    }
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// An unprivileged local user who controls paths root hands to nucleus.

/// The unprivileged user's uid and gid.
fn unprivileged_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name(UNPRIVILEGED_USER)
        .unwrap()
        .unwrap_or_else(|| panic!("user {UNPRIVILEGED_USER} missing: .ci/run creates it"));
    (user.uid.as_raw(), user.gid.as_raw())
}

/// Gives `path` (and everything below it) to the unprivileged user.
fn give_to_user(path: &std::path::Path) {
    let (uid, gid) = unprivileged_ids();
    for entry in walkdir::WalkDir::new(path) {
        let entry = entry.unwrap();
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid)).unwrap();
    }
}

/// Lets the unprivileged user reach the world's directory (a fresh
/// temporary directory is 0700).
fn open_world_to_user(w: &World) {
    std::fs::set_permissions(w.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The racer, run as the unprivileged user: until STOPFILE exists (or a
/// minute has passed), exchanges each pair of paths
/// (`renameat2(RENAME_EXCHANGE)`: both names always exist, one the
/// directory, the other the symlink) as fast as it can; then prints how many
/// exchanges it made.
const SWAPPER: &str = r#"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
stop = sys.argv[1]
args = [a.encode() for a in sys.argv[2:]]
pairs = list(zip(args[0::2], args[1::2]))
end = time.monotonic() + 60
swaps = 0
while time.monotonic() < end and not os.path.exists(stop):
    for _ in range(200):
        for a, b in pairs:
            if libc.renameat2(-100, a, -100, b, 2) == 0:
                swaps += 1
print(swaps, flush=True)
"#;

/// The swapper, running as the unprivileged user until it is stopped.
struct Swapper {
    child: std::process::Child,
    stop: PathBuf,
}

impl Swapper {
    fn start(w: &World, pairs: &[(&std::path::Path, &std::path::Path)]) -> Swapper {
        let stop = w.path("stop-swapping");
        let mut cmd = as_unprivileged_user("/usr/bin/python3");
        cmd.arg("-c").arg(SWAPPER).arg(&stop);
        for (a, b) in pairs {
            cmd.arg(a).arg(b);
        }
        let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        Swapper { child, stop }
    }

    /// Stops it and returns how many exchanges it made.
    fn stop(self) -> u64 {
        std::fs::write(&self.stop, "").unwrap();
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    }
}

/// Runs `attempt(i)` for i = 0, 1, … on two threads until at least `runs`
/// attempts and `seconds` have passed.
fn attempts(runs: usize, seconds: u64, attempt: impl Fn(usize) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= runs && start.elapsed().as_secs() >= seconds {
                    break;
                }
                attempt(i);
            });
        }
    });
}

#[test]
fn host_paths_swapped_for_symlinks_while_root_runs_show_nothing_else() {
    let w = World::new();
    open_world_to_user(&w);
    // A root-only directory with a canary, the target of one symlink; the
    // host's /etc, the target of the other (only ever shown read-only).
    let secret = w.path("root-only");
    std::fs::create_dir_all(secret.join("vol")).unwrap();
    std::fs::write(secret.join("vol/canary-root-only"), "canary").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The user's directory: p/vol is the volume, q links to the root-only
    // directory (a swapped parent); leaf/vol is a volume, leaf/evil links
    // to /etc (a swapped last component).
    let race = w.path("race");
    std::fs::create_dir_all(race.join("p/vol")).unwrap();
    std::fs::write(race.join("p/vol/user-file"), "mine").unwrap();
    std::fs::set_permissions(race.join("p/vol"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&secret, race.join("q")).unwrap();
    std::fs::create_dir_all(race.join("leaf/vol")).unwrap();
    std::fs::write(race.join("leaf/vol/user-file"), "mine").unwrap();
    std::os::unix::fs::symlink("/etc", race.join("leaf/evil")).unwrap();
    give_to_user(&race);
    let (p, q) = (race.join("p"), race.join("q"));
    let (leaf, evil) = (race.join("leaf/vol"), race.join("leaf/evil"));
    let etc_before: Vec<String> = common::entries(std::path::Path::new("/etc"));
    let swapper = Swapper::start(&w, &[(&p, &q), (&leaf, &evil)]);
    let hello = hello();
    let shown = std::sync::atomic::AtomicUsize::new(0);
    let refused = std::sync::atomic::AtomicUsize::new(0);
    attempts(12, 3, |i| {
        let (option, spec, dst) = match i % 3 {
            0 => ("-v", format!("{}:/data:rw", race.join("p/vol").display()), "/data"),
            1 => ("-v", format!("{}:/data", race.join("leaf/vol").display()), "/data"),
            _ => ("--context", race.join("p/vol").display().to_string(), "/context"),
        };
        // Exit 0 whatever happens: the probe is what it shows and writes.
        let script = format!(
            "ls {dst}; cat {dst}/hostname {dst}/canary-root-only 2>/dev/null; touch {dst}/written-{i} 2>/dev/null; true"
        );
        let out = w.run(&["run", option, &spec, &hello, "--", "/bin/sh", "-c", &script]);
        let text = stdout(&out);
        for leak in ["canary", "passwd", "shadow", "hostname", "os-release"] {
            assert!(!text.contains(leak), "run {i} ({option} {spec}) shows {leak}:\n{text}");
        }
        if out.status.code() == Some(125) {
            let err = stderr(&out);
            assert!(err.starts_with("nucleus: ") && err.lines().count() == 1, "run {i}: {err}");
            assert!(err.contains("symlink") || err.contains("changed"), "run {i}: {err}");
            refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        } else {
            assert_eq!(out.status.code(), Some(0), "run {i}: {}", stderr(&out));
            assert!(text.lines().all(|l| l == "user-file" || l.starts_with("written-")), "run {i}:\n{text}");
            shown.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let swaps = swapper.stop();
    let (shown, refused) = (shown.into_inner(), refused.into_inner());
    eprintln!(
        "{} runs against {swaps} swaps: {shown} showed the user's directory, {refused} were refused",
        shown + refused
    );
    assert!(swaps > 1000, "the swapper hardly ran: {swaps} swaps");
    assert!(shown > 0, "no run got through at all");
    assert_eq!(common::entries(&secret.join("vol")), ["canary-root-only"], "a run wrote into the root-only directory");
    assert_eq!(common::entries(std::path::Path::new("/etc")), etc_before, "a run changed /etc");
    w.assert_clean();
}

/// The same user, swapping a directory inside a read-write volume for a
/// link to a root-only directory while the workload writes there: gVisor's
/// gofer walks the volume through descriptors and never follows a host
/// symlink, and the workload's own walk resolves the link in the sandbox.
#[test]
fn a_volume_s_contents_swapped_under_a_running_workload_never_lead_outside() {
    let w = World::new();
    open_world_to_user(&w);
    let target = w.path("root-only");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("canary"), "canary").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let vol = w.path("vol");
    std::fs::create_dir_all(vol.join("sub")).unwrap();
    std::fs::set_permissions(vol.join("sub"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&target, vol.join("link")).unwrap();
    give_to_user(&vol);
    let swapper = Swapper::start(&w, &[(&vol.join("sub"), &vol.join("link"))]);
    let script = r#"i=0; while [ $i -lt 1500 ]; do echo x > /data/sub/w$i; cat /data/sub/canary; i=$((i+1)); done 2>/dev/null; true"#;
    let out = w.sh_with(&["-v", &format!("{}:/data:rw", vol.display())], script);
    let swaps = swapper.stop();
    assert!(swaps > 1000, "the swapper hardly ran: {swaps}");
    assert!(!ok(&out).contains("canary"), "the workload read the root-only directory");
    assert_eq!(common::entries(&target), ["canary"], "the workload wrote into the root-only directory");
    w.assert_clean();
}

#[test]
fn hook_programs_resolve_only_inside_the_store() {
    let w = World::new();
    open_world_to_user(&w);
    let hook = closure("hook").join("bin/hook");
    let log = w.path("hooks.log");
    // A script of the unprivileged user's, which would leave a mark.
    let users = w.path("users");
    std::fs::create_dir(&users).unwrap();
    let mark = users.join("ran-as-root");
    let evil = users.join("evil");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_user(&users);
    // Store paths added as a user could add them: links leading out of the
    // store, and one to the real hook.
    let add = |name: &str, target: &std::path::Path| {
        let link = w.path(name);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let out = Command::new(nix_bin("nix-store")).arg("--add").arg(&link).env("NIX_CONFIG", NIX_CONFIG).output();
        ok(&out.unwrap()).trim().to_string()
    };
    let out_of_store = add("nucleus-hook-out", &evil);
    let relative_out = add("nucleus-hook-up", std::path::Path::new("../../tmp/evil"));
    let to_real_hook = add("nucleus-hook-in", &hook);
    let hooks_json = |path: &str| {
        let file = w.path("hooks.json");
        let json = serde_json::json!({"createRuntime": [{"path": path, "args": ["hook", "createRuntime", log]}]});
        std::fs::write(&file, json.to_string()).unwrap();
        file
    };
    let hello = hello();
    let motd = closure("hello").join("etc/motd");
    let refused = [
        out_of_store.clone(),
        format!("{relative_out}/evil"),
        relative_out.clone(),
        format!("{to_real_hook}/../{}", hook.strip_prefix("/nix/store/").unwrap().display()),
        motd.display().to_string(),
        "/nix/store/.links".to_string(),
        "/nix/store/00000000000000000000000000000000-unregistered/bin/hook".to_string(),
    ];
    for path in &refused {
        let file = hooks_json(path);
        let out = w.run(&["run", "--hooks", file.to_str().unwrap(), &hello, "--", "/bin/true"]);
        assert_refused(&out);
        assert!(stderr(&out).contains("hook"), "{path}: {}", stderr(&out));
    }
    assert!(!mark.exists() && !log.exists(), "a refused hook ran");
    // Through a store link, the hook runs, and runsc is given the program's
    // canonical path, which no one can change any more.
    let file = hooks_json(&to_real_hook);
    let dry = w.dry_run(&["--hooks", file.to_str().unwrap(), &hello, "--", "/bin/true"]);
    assert_eq!(dry.config["hooks"]["createRuntime"][0]["path"], hook.display().to_string());
    ok(&w.run(&["run", "--hooks", file.to_str().unwrap(), &hello, "--", "/bin/true"]));
    assert!(std::fs::read_to_string(&log).unwrap().starts_with("createRuntime "), "the hook did not run");
    assert!(!mark.exists());
    w.assert_clean();
}

#[test]
fn configuration_files_are_read_only_through_places_no_one_else_controls() {
    let w = World::new();
    open_world_to_user(&w);
    let hello = hello();
    // A root-only environment file, and the user's directory where a name
    // is made to point at it.
    let root_only = w.path("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(root_only.join("secret.env"), "TOKEN=topsecret\n").unwrap();
    let users = w.path("users");
    std::fs::create_dir(&users).unwrap();
    std::os::unix::fs::symlink(root_only.join("secret.env"), users.join("app.env")).unwrap();
    std::fs::write(users.join("profile.json"), r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let hook = closure("hook").join("bin/hook");
    let log = w.path("hooks.log");
    let hooks = serde_json::json!({"createRuntime": [{"path": hook, "args": ["hook", "createRuntime", log]}]});
    std::fs::write(users.join("hooks.json"), hooks.to_string()).unwrap();
    give_to_user(&users);
    // A hooks file of root's that anyone may write.
    let writable_hooks = w.path("writable-hooks.json");
    std::fs::write(&writable_hooks, hooks.to_string()).unwrap();
    std::fs::set_permissions(&writable_hooks, std::fs::Permissions::from_mode(0o666)).unwrap();
    let env = users.join("app.env");
    let profile = users.join("profile.json");
    let users_hooks = users.join("hooks.json");
    let refused: [(&str, &std::path::Path); 4] = [
        ("--env-file", &env),
        ("--seccomp-profile", &profile),
        ("--hooks", &users_hooks),
        ("--hooks", &writable_hooks),
    ];
    for (option, file) in refused {
        let out = w.run(&["run", option, file.to_str().unwrap(), &hello, "--", "/bin/sh", "-c", "env"]);
        assert_refused(&out);
        assert!(!stdout(&out).contains("topsecret"));
        assert!(stderr(&out).contains("uid") || stderr(&out).contains("writable"), "{option}: {}", stderr(&out));
    }
    assert!(!log.exists(), "a refused hooks file ran its hook");
    // Through a link of root's own, the same file is read.
    std::os::unix::fs::symlink(root_only.join("secret.env"), w.path("mine.env")).unwrap();
    let env = ok(&w.sh_with(&["--env-file", w.path("mine.env").to_str().unwrap()], "env"));
    assert!(env.contains("TOKEN=topsecret"), "{env}");
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// The setuid guard against user seccomp profiles.

/// Profiles that allow, by name and first, every call that can set a mode
/// (and, conditionally, exactly the setuid and setgid bits).
fn permissive_profiles(w: &World) -> Vec<PathBuf> {
    let calls = ["chmod", "fchmod", "fchmodat", "open", "openat", "creat", "mkdir", "mkdirat", "mknod", "mknodat"];
    let by_name = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": calls, "action": "SCMP_ACT_ALLOW"}]
    });
    let setid = |index: u32, bit: u32| serde_json::json!({"index": index, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"});
    let by_bit = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["chmod", "fchmod", "creat", "mkdir", "mknod"], "action": "SCMP_ACT_ALLOW", "args": [setid(1, 0o4000)]},
            {"names": ["chmod", "fchmod", "creat", "mkdir", "mknod"], "action": "SCMP_ACT_ALLOW", "args": [setid(1, 0o2000)]},
            {"names": ["fchmodat", "open", "mknodat", "mkdirat"], "action": "SCMP_ACT_ALLOW", "args": [setid(2, 0o4000)]},
            {"names": ["openat"], "action": "SCMP_ACT_ALLOW", "args": [setid(3, 0o4000)]},
            {"names": ["openat"], "action": "SCMP_ACT_ALLOW", "args": [setid(3, 0o2000)]},
            {"names": ["chmod", "fchmodat", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    [("by-name", by_name), ("by-bit", by_bit)]
        .into_iter()
        .map(|(name, profile)| {
            let file = w.path(&format!("seccomp-{name}.json"));
            std::fs::write(&file, profile.to_string()).unwrap();
            file
        })
        .collect()
}

/// Every way busybox has to set a setuid or setgid bit, and (in host mode)
/// Python's, straight to the system calls, including file capabilities.
const SETID_PROBES_SH: &str = r#"
    t copy "$B cp $SH /vol/bb"
    t chmod-4755 "$B chmod 4755 /vol/bb"
    t chmod-u+s "$B chmod u+s /vol/bb"
    t chmod-2755 "$B chmod 2755 /vol/bb"
    t mkdir-2777 "$B mkdir -m 2777 /vol/sgid-dir"
    t mknod-fifo "$B mknod -m 4755 /vol/fifo p"
    t append-setuid "echo x >> /vol/existing-setuid"
"#;

const SETID_PROBES_PY: &str = r#"
import os, stat
def t(name, f):
    try:
        f(); print("probe %s status=0 out=" % name)
    except OSError as e:
        print("probe %s status=1 out=%s" % (name, e))
t("py-plain", lambda: os.close(os.open("/vol/py-plain", os.O_CREAT | os.O_WRONLY, 0o755)))
t("py-open-creat", lambda: os.close(os.open("/vol/py-setuid", os.O_CREAT | os.O_WRONLY, 0o4755)))
t("py-chmod", lambda: os.chmod("/vol/py-plain", 0o6755))
def fchmod():
    fd = os.open("/vol/py-plain", os.O_RDONLY)
    try: os.fchmod(fd, 0o4755)
    finally: os.close(fd)
t("py-fchmod", fchmod)
def fchmodat():
    d = os.open("/vol", os.O_RDONLY)
    try: os.chmod("py-plain", 0o2755, dir_fd=d)
    finally: os.close(d)
t("py-fchmodat", fchmodat)
t("py-mknod", lambda: os.mknod("/vol/py-mknod", stat.S_IFREG | 0o4755))
t("py-mkdir", lambda: os.mkdir("/vol/py-dir", 0o2777))
t("py-capability", lambda: os.setxattr("/vol/py-plain", "security.capability", bytes.fromhex("01000002" + "ff" * 4 + "00" * 12)))
print("probe done status=0 out=")
"#;

#[test]
fn a_writable_volume_takes_no_setuid_file_whatever_a_profile_allows() {
    let w = World::new();
    let hello = closure("hello");
    let sh = hello.join("bin/sh");
    for profile in permissive_profiles(&w) {
        for mode in both_modes("hello") {
            let (dir, opt) = writable_volume(&w, &format!("rw-{}-{}", mode.name().replace(' ', "-"), entries_of(&w)));
            // A setuid-root file already there, which the workload owns.
            let existing = dir.join("existing-setuid");
            std::fs::copy(which("busybox").unwrap(), &existing).unwrap();
            std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o4755)).unwrap();
            // In host mode, Python makes the system calls itself, from the
            // same run (its program comes in the environment).
            let py = format!("PY={SETID_PROBES_PY}");
            let mut opts = vec!["-v", &opt, "--seccomp-profile", profile.to_str().unwrap()];
            let mut script = format!("SH={}\n{SETID_PROBES_SH}", sh.display());
            if let Mode::Host = mode {
                opts.extend(["-e", &py]);
                script.push_str("/usr/bin/python3 -c \"$PY\"\n");
            }
            let p = run_probes(&w, &mode, &opts, &script);
            p.worked("copy");
            if let Mode::Host = mode {
                p.worked("done");
                p.worked("py-plain");
                let probes = ["py-open-creat", "py-chmod", "py-fchmod", "py-fchmodat", "py-mknod", "py-mkdir"];
                for probe in probes {
                    p.refused_with(probe, "Operation not permitted");
                }
                p.refused("py-capability");
            }
            for (path, meta) in entries(&dir) {
                assert_eq!(
                    meta.mode() & 0o6000,
                    0,
                    "{} {profile:?}: {path:?} is {:o} on the host",
                    p.mode,
                    meta.mode()
                );
                let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid C string and no buffer: only the size is asked.
                let caps =
                    unsafe { libc::lgetxattr(name.as_ptr(), c"security.capability".as_ptr(), std::ptr::null_mut(), 0) };
                assert!(caps < 0, "{}: {path:?} carries file capabilities", p.mode);
            }
        }
    }
    w.assert_clean();
}

/// A number for unique directory names within one world.
fn entries_of(w: &World) -> usize {
    std::fs::read_dir(w.tmp.path()).unwrap().count()
}

#[test]
fn seccomp_profiles_this_runsc_cannot_apply_are_refused_before_anything_is_written() {
    let w = World::new();
    let rule = |extra: serde_json::Value| {
        let mut rule = serde_json::json!({"names": ["chmod"], "action": "SCMP_ACT_ERRNO"});
        rule.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
    };
    // 4000 unconditional rules over 40 calls: more than runsc's 4096
    // instructions hold (it compiles about 3900 of them).
    let calls = [
        "read",
        "write",
        "open",
        "close",
        "stat",
        "fstat",
        "lstat",
        "poll",
        "lseek",
        "mmap",
        "mprotect",
        "munmap",
        "brk",
        "ioctl",
        "pread64",
        "pwrite64",
        "readv",
        "writev",
        "access",
        "pipe",
        "select",
        "dup",
        "dup2",
        "pause",
        "nanosleep",
        "getpid",
        "socket",
        "connect",
        "accept",
        "sendto",
        "recvfrom",
        "clone",
        "fork",
        "execve",
        "exit",
        "wait4",
        "kill",
        "uname",
        "fcntl",
        "flock",
    ];
    let too_many: Vec<serde_json::Value> =
        (0..4000).map(|i| serde_json::json!({"names": [calls[i % calls.len()]], "action": "SCMP_ACT_ALLOW"})).collect();
    let six_args: Vec<serde_json::Value> = (0..200u64)
        .map(|i| {
            let args: Vec<serde_json::Value> = (0..6u64)
                .map(|j| serde_json::json!({"index": j, "value": (1u64 << 40) + i, "op": "SCMP_CMP_GT"}))
                .collect();
            serde_json::json!({"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": args})
        })
        .collect();
    let mut bad: Vec<(&str, serde_json::Value)> = vec![
        ("argz", rule(serde_json::json!({"argz": []}))),
        ("valu2", rule(serde_json::json!({"args": [{"index": 1, "value": 1, "valu2": 2, "op": "SCMP_CMP_EQ"}]}))),
        ("errnoRet 13", rule(serde_json::json!({"errnoRet": 13}))),
        ("defaultErrnoRet 38", serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})),
        (
            "unknown call",
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]}),
        ),
        (
            "openat2",
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["openat2"], "action": "SCMP_ACT_ERRNO"}]}),
        ),
        ("4000 rules", serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": too_many})),
        ("200 six-argument rules", serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": six_args})),
    ];
    for action in ["LOG", "NOTIFY", "KILL_PROCESS", "KILL_THREAD"] {
        let action = format!("SCMP_ACT_{action}");
        bad.push(("action", serde_json::json!({"defaultAction": action})));
        bad.push(("action", serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod"], "action": action}]})));
    }
    let data = w.path("data");
    std::fs::create_dir(&data).unwrap();
    let vol = format!("{}:/data:rw", data.display());
    let hello = hello();
    for (what, profile) in &bad {
        let file = w.path("profile.json");
        std::fs::write(&file, profile.to_string()).unwrap();
        let out = w.run(&["run", "-v", &vol, "--seccomp-profile", file.to_str().unwrap(), &hello, "--", "/bin/true"]);
        assert_refused(&out);
        assert_eq!(stderr(&out).lines().count(), 1, "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains("--seccomp-profile"), "{what}: {}", stderr(&out));
        assert!(!w.state_root().exists(), "{what}: the state root was created");
        assert!(common::entries(&data).is_empty(), "{what}");
    }
}

// ---------------------------------------------------------------------------
// State roots.

/// A directory like /tmp: owned by root, world-writable, sticky.
fn shared_dir(w: &World, name: &str) -> PathBuf {
    open_world_to_user(w);
    let dir = w.path(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// `nucleus --state-root ROOT ARGS…`.
fn with_state_root(w: &World, root: &std::path::Path, args: &[&str]) -> Output {
    w.nucleus().env_remove("NUCLEUS_STATE_ROOT").arg("--state-root").arg(root).args(args).output().unwrap()
}

#[test]
fn a_state_root_another_user_can_write_is_refused() {
    let w = World::new();
    let shared = shared_dir(&w, "shared");
    let theirs = w.path("theirs");
    std::fs::create_dir_all(theirs.join("state")).unwrap();
    give_to_user(&theirs);
    let group_writable = w.path("group-writable");
    std::fs::create_dir(&group_writable).unwrap();
    std::fs::set_permissions(&group_writable, std::fs::Permissions::from_mode(0o775)).unwrap();
    let mine = w.path("mine");
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::symlink(&mine, shared.join("link")).unwrap();
    let hello = hello();
    let refused = [
        shared.clone(),                    // /tmp itself, sticky or not
        theirs.clone(),                    // owned by the user
        theirs.join("state"),              // …and its child
        theirs.join("new"),                // a new one inside the user's directory
        group_writable.join("state"),      // a parent writable by the group
        shared.join("link").join("state"), // a symlink on the way
    ];
    for root in &refused {
        for args in [&["run", &hello, "--", "/bin/true"][..], &["ps"], &["delete", "--force", "web"]] {
            let out = with_state_root(&w, root, args);
            assert_refused(&out);
            assert!(stderr(&out).contains("state"), "{root:?} {args:?}: {}", stderr(&out));
        }
    }
    assert_eq!(std::fs::metadata(&shared).unwrap().mode() & 0o7777, 0o1777, "the shared directory's mode changed");
    assert!(common::entries(&shared) == ["link"] && !theirs.join("new").exists() && common::entries(&mine).is_empty());
    // A state root of its own inside the shared directory is fine.
    ok(&with_state_root(&w, &shared.join("mine"), &["run", &hello, "--", "/bin/true"]));
    assert_eq!(std::fs::metadata(shared.join("mine")).unwrap().mode() & 0o7777, 0o700);
}

#[test]
fn records_and_caches_planted_by_another_user_are_never_used() {
    let w = World::new();
    let shared = shared_dir(&w, "shared");
    // The victim: a process of this test's own, which `delete --force`
    // would kill if it believed a planted record.
    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = victim.id();
    let start: u64 = {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat[stat.rfind(')').unwrap() + 2..].split_whitespace().nth(19).unwrap().parse().unwrap()
    };
    let record = serde_json::json!({
        "id": "web", "status": "running", "supervisorPid": pid, "supervisorStart": start, "sandboxPid": null,
        "bundle": "/nonexistent", "created": 1, "digest": "sha256:x", "installable": null, "command": ["x"],
        "cgroupsPath": null, "keep": false, "exitStatus": null
    });
    // A closure cache entry that adds the decoy to hello's closure.
    let hello = closure("hello");
    let decoy = closure("decoy");
    let fingerprint = |p: &str| {
        let m = std::fs::symlink_metadata(p).unwrap();
        serde_json::json!([m.dev(), m.ino(), m.ctime(), m.ctime_nsec()])
    };
    let mut paths: Vec<String> = requisites(&hello);
    paths.push(decoy.display().to_string());
    let cached: Vec<serde_json::Value> = paths
        .iter()
        .map(|p| serde_json::json!({"path": p, "narHash": format!("sha256-{}=", "A".repeat(43)), "narSize": 1, "references": [], "fingerprint": fingerprint(p)}))
        .collect();
    let entry = serde_json::json!({"version": 1, "root": hello, "paths": cached});
    let cache_name = format!("{}.json", hello.file_name().unwrap().to_str().unwrap());
    // Planted straight into the shared directory, and into a directory of
    // the user's own beside it.
    let users = w.path("users-state");
    std::fs::create_dir(&users).unwrap();
    for root in [&shared, &users] {
        std::fs::create_dir_all(root.join("web")).unwrap();
        std::fs::write(root.join("web/record.json"), record.to_string()).unwrap();
        std::fs::create_dir_all(root.join(".cache/closures")).unwrap();
        std::fs::write(root.join(".cache/closures").join(&cache_name), entry.to_string()).unwrap();
        for name in ["web", ".cache"] {
            give_to_user(&root.join(name));
        }
    }
    give_to_user(&users);
    let script = format!("ls /nix/store; cat {}", decoy.display());
    for root in [&shared, &users] {
        let out = with_state_root(&w, root, &["delete", "--force", "web"]);
        assert_refused(&out);
        assert!(victim.try_wait().unwrap().is_none(), "{root:?}: the victim was killed");
        let out = with_state_root(&w, root, &["run", hello.to_str().unwrap(), "--", "/bin/sh", "-c", &script]);
        assert_refused(&out);
        assert!(!stdout(&out).contains("decoy"), "{root:?}: the poisoned cache reached the store view");
        let out = with_state_root(&w, root, &["ps", "--all"]);
        assert_refused(&out);
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
}

/// The racer for a state root that does not exist yet: makes it as the
/// unprivileged user and removes it again, over and over, keeping it the
/// moment anything appears inside.
const TAKER: &str = r#"
import os, sys, time
stop, target = sys.argv[1], sys.argv[2]
end = time.monotonic() + 60
kept = 0
while time.monotonic() < end and not os.path.exists(stop):
    try:
        os.mkdir(target, 0o777)
    except OSError:
        continue
    try:
        os.rmdir(target)
    except OSError:
        kept += 1
        break
print(kept, flush=True)
"#;

#[test]
fn a_state_root_taken_while_nucleus_creates_it_is_refused() {
    let w = World::new();
    let shared = shared_dir(&w, "shared");
    let target = shared.join("state");
    let stop = w.path("stop-taking");
    let mut taker = as_unprivileged_user("/usr/bin/python3")
        .arg("-c")
        .arg(TAKER)
        .arg(&stop)
        .arg(&target)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (user, _) = unprivileged_ids();
    let hello = hello();
    let start = std::time::Instant::now();
    let mut runs = 0;
    while runs < 5 || start.elapsed() < std::time::Duration::from_secs(2) {
        runs += 1;
        let out = with_state_root(&w, &target, &["run", &hello, "--", "/bin/true"]);
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.uid() == user => {
                assert_refused(&out);
                // Nothing of root's was made inside the user's directory
                // (which the user may be removing as we look).
                for entry in walkdir::WalkDir::new(&target).min_depth(1).into_iter().flatten() {
                    let Ok(meta) = entry.metadata() else { continue };
                    assert_ne!(meta.uid(), 0, "root wrote {:?} into the user's directory", entry.path());
                }
            }
            Ok(meta) => {
                assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o700), "run {runs}");
                std::fs::remove_dir_all(&target).unwrap();
            }
            Err(_) => {}
        }
        if out.status.code() != Some(0) {
            assert_refused(&out);
        }
        if taker.try_wait().unwrap().is_some() {
            break;
        }
    }
    std::fs::write(&stop, "").unwrap();
    let kept = String::from_utf8_lossy(&taker.wait_with_output().unwrap().stdout).trim().to_string();
    eprintln!("{runs} runs; the user kept a directory root used {kept} times");
    assert_ne!(kept, "1", "root used a state root the user had made");
}

#[test]
fn another_user_cannot_list_reach_or_exec_into_root_s_containers() {
    let w = World::new();
    open_world_to_user(&w);
    let mut child = w.spawn_sh("private", &[], "trap 'exit 0' TERM; echo up; while :; do sleep 0.1; done");
    w.wait_running("private");
    let root = w.state_root();
    assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
    let ls = as_unprivileged_user("/bin/ls").arg(&root).output().unwrap();
    assert!(!ls.status.success() && !stdout(&ls).contains("private"), "{}", stdout(&ls));
    for args in [&["ps"][..], &["state", "private"], &["exec", "private", "--", "/bin/true"], &["kill", "private"]] {
        let out = as_unprivileged_user(NUCLEUS).arg("--state-root").arg(&root).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stdout(&out));
        assert!(!stdout(&out).contains("private"), "{args:?}");
    }
    // The control socket itself, straight.
    let connect = format!(
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?}); print('connected')",
        root.join("private/control.sock")
    );
    let out = as_unprivileged_user("/usr/bin/python3").args(["-c", &connect]).output().unwrap();
    assert!(!out.status.success() && !stdout(&out).contains("connected"));
    ok(&w.run(&["kill", "private"]));
    assert!(child.wait().unwrap().success());
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// digest and verify against a bundle someone else changed.

/// `nucleus bundle --out DIR -v DATA:/data hello -- /bin/sh -c SCRIPT`;
/// returns the digest.
fn data_bundle(w: &World, dir: &std::path::Path, data: &std::path::Path, script: &str) -> String {
    let vol = format!("{}:/data", data.display());
    let args = ["bundle", "--out", dir.to_str().unwrap(), "-v", &vol, &hello(), "--", "/bin/sh", "-c", script];
    ok(&w.run(&args)).trim().to_string()
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn config_of(dir: &std::path::Path) -> serde_json::Value {
    read_json(&dir.join("config.json"))
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// What `verify DIR` says: its status and report.
fn verify(w: &World, dir: &std::path::Path, deep: bool) -> (Option<i32>, String) {
    let mut args = vec!["verify"];
    if deep {
        args.push("--deep");
    }
    args.push(dir.to_str().unwrap());
    let out = w.run(&args);
    (out.status.code(), format!("{}{}", stdout(&out), stderr(&out)))
}

/// Re-signs a tampered bundle as an attacker would: the recorded digest
/// becomes whatever `digest` now computes, so that only verify's own checks
/// stand between the bundle and a runtime.
fn re_sign(w: &World, dir: &std::path::Path) {
    let digest = ok(&w.run(&["digest", dir.to_str().unwrap()])).trim().to_string();
    let record = dir.join("nucleus.json");
    let mut r = read_json(&record);
    r["digest"] = digest.into();
    write_json(&record, &r);
}

/// Runtimes written in Go match config.json's member names regardless of
/// case, the last match winning: a `"Mounts"` beside `"mounts"` is what
/// runsc mounts (the host's `/`, here) while nucleus hashes and checks the
/// other, and their order, which canonical JSON forgets, decides. And they
/// decode a member named twice into one struct. Every member the spec's
/// types do not read and every member named twice, at any depth, is
/// refused by `digest` and `verify` alike.
#[test]
fn members_a_go_runtime_reads_otherwise_than_nucleus_are_refused() {
    let w = World::new();
    let hello = closure("hello");
    let dir = w.path("b");
    let dir_s = dir.to_str().unwrap();
    ok(&w.run(&["bundle", "--out", dir_s, hello.to_str().unwrap(), "--", "/bin/sh", "-c", "ls /host"]));
    let honest = serde_json::to_string(&config_of(&dir)).unwrap();
    let mut mounts = config_of(&dir)["mounts"].clone();
    let root = serde_json::json!({"destination": "/host", "type": "bind", "source": "/",
        "options": ["rbind", "ro", "nosuid", "nodev"]});
    mounts.as_array_mut().unwrap().push(root);
    std::fs::create_dir(dir.join("rootfs/host")).unwrap();
    let before = format!("{{\"Mounts\":{mounts},{}", &honest[1..]);
    let after = format!("{},\"Mounts\":{mounts}}}", &honest[..honest.len() - 1]);
    let nested = honest.replacen("\"destination\"", "\"Destination\":\"/etc\",\"destination\"", 1);
    let process = format!("{},\"PROCESS\":{{\"args\":[\"/bin/sh\"]}}}}", &honest[..honest.len() - 1]);
    // Go decodes a member named twice into one struct: fields only the
    // first one holds survive (serde_json would keep the last one alone).
    let twice = format!("{{\"process\":{{\"user\":{{\"additionalGids\":[0,6]}}}},{}", &honest[1..]);
    let cases = [
        (&before, "/Mounts"),
        (&after, "/Mounts"),
        (&nested, "/Destination"),
        (&process, "/PROCESS"),
        (&twice, "\"process\" is named twice"),
    ];
    for (text, named) in cases {
        std::fs::write(dir.join("config.json"), text).unwrap();
        for command in ["digest", "verify"] {
            let out = w.run(&[command, dir_s]);
            assert_refused(&out);
            assert!(stderr(&out).contains(named), "{command}: {}", stderr(&out));
        }
    }
    // What the refusal prevents: with "Mounts" last, runsc shows the host's /.
    std::fs::write(dir.join("config.json"), &after).unwrap();
    let id = format!("nucleus-mounts-{}", std::process::id());
    let runsc = run_bundle_under("runsc", &w.path("runsc-root"), &["--network=none"], &dir, &id);
    assert!(stdout(&runsc).lines().any(|l| l == "proc"), "runsc did not read \"Mounts\": {}", stdout(&runsc));
    w.assert_clean();
}

#[test]
fn verify_catches_a_bundle_that_shows_something_else() {
    let w = World::new();
    let data = w.path("data");
    std::fs::create_dir(&data).unwrap();
    let hello_path = closure("hello");
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        let dir = w.path(&format!("b{n}"));
        let digest = data_bundle(&w, &dir, &data, "cat /data/hostname");
        (dir, digest)
    };
    // Each tampering, and what verify must say about it.
    type Tamper = Box<dyn Fn(&std::path::Path)>;
    let store_path = hello_path.display().to_string();
    let cases: Vec<(&str, Tamper, bool, &str)> = vec![
        (
            "a store mount pointed elsewhere",
            Box::new({
                let store_path = store_path.clone();
                move |dir| {
                    let mut c = config_of(dir);
                    for m in c["mounts"].as_array_mut().unwrap() {
                        if m["destination"] == store_path.as_str() {
                            m["source"] = "/etc".into();
                        }
                    }
                    write_json(&dir.join("config.json"), &c);
                }
            }),
            false,
            "the digest is",
        ),
        (
            "a bind of the host's /",
            Box::new(move |dir| {
                let mut c = config_of(dir);
                let root = serde_json::json!({"destination": "/host", "type": "bind", "source": "/", "options": ["rbind", "rw"]});
                c["mounts"].as_array_mut().unwrap().push(root);
                write_json(&dir.join("config.json"), &c);
                std::fs::create_dir(dir.join("rootfs/host")).unwrap();
            }),
            false,
            "the digest is",
        ),
        (
            "rootfs replaced by a symlink to /",
            Box::new(|dir| {
                std::fs::remove_dir_all(dir.join("rootfs")).unwrap();
                std::os::unix::fs::symlink("/", dir.join("rootfs")).unwrap();
            }),
            false,
            "rootfs is not a real directory",
        ),
        (
            "an extra file in rootfs",
            Box::new(|dir| std::fs::write(dir.join("rootfs/etc/extra"), "x").unwrap()),
            false,
            "rootfs/etc/extra is unexpected",
        ),
        (
            "an extra symlink in rootfs",
            Box::new(|dir| {
                std::os::unix::fs::symlink("/etc", dir.join("rootfs/data/etc"))
                    .unwrap_or_else(|_| std::os::unix::fs::symlink("/etc", dir.join("rootfs/hostetc")).unwrap())
            }),
            false,
            "is unexpected",
        ),
        (
            "a mountpoint that is a huge file",
            Box::new(|dir| {
                let f = dir.join("rootfs/etc");
                std::fs::remove_dir_all(&f).unwrap();
                std::fs::File::create(&f).unwrap().set_len(8 << 30).unwrap();
            }),
            false,
            "rootfs/etc is unexpected",
        ),
        (
            "a root other than rootfs, re-signed",
            Box::new(|dir| {
                let mut c = config_of(dir);
                c["root"]["path"] = "/".into();
                write_json(&dir.join("config.json"), &c);
            }),
            true,
            "not the bundle's own rootfs",
        ),
        (
            "a swapped narHash, re-signed",
            Box::new(|dir| {
                let record = dir.join("nucleus.json");
                let mut r = read_json(&record);
                r["closure"][0]["narHash"] = format!("sha256-{}=", "A".repeat(43)).into();
                write_json(&record, &r);
            }),
            true,
            "Nix records",
        ),
        (
            // The same digest as the honest bundle: the host's /etc shown at
            // /data through a "staged" symlink the record vouches for.
            "a staged source that is a symlink",
            Box::new({
                let data = data.clone();
                move |dir| {
                    let mut c = config_of(dir);
                    for m in c["mounts"].as_array_mut().unwrap() {
                        if m["destination"] == "/data" {
                            m["source"] = dir.join("staging/volume-0").display().to_string().into();
                        }
                    }
                    write_json(&dir.join("config.json"), &c);
                    let record = dir.join("nucleus.json");
                    let mut r = read_json(&record);
                    r["stagedSources"] = serde_json::json!({"staging/volume-0": data});
                    write_json(&record, &r);
                    std::fs::create_dir(dir.join("staging")).unwrap();
                    std::os::unix::fs::symlink("/etc", dir.join("staging/volume-0")).unwrap();
                }
            }),
            false,
            "symlink",
        ),
        (
            // The same digest again: one bind of a "store view" the bundle
            // fills itself, in place of one bind per store path.
            "a store view of the bundle's own",
            Box::new({
                let store_path = store_path.clone();
                move |dir| {
                    let mut c = config_of(dir);
                    let mounts = c["mounts"].as_array_mut().unwrap();
                    let first = mounts
                        .iter()
                        .position(|m| m["destination"].as_str().unwrap().starts_with("/nix/store"))
                        .unwrap();
                    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/nix/store"));
                    let view = dir.join("store-view").display().to_string();
                    let bind = serde_json::json!({"destination": "/nix/store", "type": "bind", "source": view,
                        "options": ["rbind", "rprivate", "ro", "nosuid", "nodev"]});
                    mounts.insert(first, bind);
                    write_json(&dir.join("config.json"), &c);
                    let fake = dir.join("store-view").join(store_path.trim_start_matches("/nix/store/"));
                    std::fs::create_dir_all(fake.join("bin")).unwrap();
                    std::os::unix::fs::symlink("/bin/sh", fake.join("bin/sh")).unwrap();
                }
            }),
            false,
            "directory with contents",
        ),
    ];
    for (what, tamper, re_signed, expect) in &cases {
        let (dir, honest) = fresh();
        tamper(&dir);
        if *re_signed {
            re_sign(&w, &dir);
        }
        let (status, report) = verify(&w, &dir, false);
        assert_eq!(status, Some(1), "{what}: verify passed it: {report}");
        assert!(report.contains(expect), "{what}: {report}");
        if what.starts_with("a staged source") || what.starts_with("a store view") {
            // The forgery keeps the honest digest: only verify's look at the
            // disk catches it.
            assert_eq!(ok(&w.run(&["digest", dir.to_str().unwrap()])).trim(), honest, "{what}");
        }
    }
    // And the staged symlink would really have shown the host's /etc.
    let forged = w.path(&format!("b{}", cases.len() - 1));
    let id = format!("nucleus-forged-{}", std::process::id());
    let runsc = run_bundle_under("runsc", &w.path("runsc-root"), &["--network=none"], &forged, &id);
    assert_eq!(stdout(&runsc).trim(), host_hostname(), "the forged bundle did not show the host's /etc");
    // A record that moves the normalisation elsewhere (the host's /etc
    // claimed to be the volume, with the bundle "written at /") is refused
    // by digest itself.
    let (dir, _) = fresh();
    let mut c = config_of(&dir);
    let mut staged = serde_json::Map::new();
    for m in c["mounts"].as_array_mut().unwrap() {
        let (Some(source), Some(dest)) = (m["source"].as_str().map(String::from), m["destination"].as_str()) else {
            continue;
        };
        if dest == "/data" {
            m["source"] = "/etc".into();
            staged.insert("etc".into(), data.display().to_string().into());
        } else if source.starts_with('/') && source != dest {
            staged.insert(source[1..].to_string(), source.clone().into());
        }
    }
    write_json(&dir.join("config.json"), &c);
    let record = dir.join("nucleus.json");
    let mut r = read_json(&record);
    r["bundleDir"] = "/".into();
    r["stagedSources"] = staged.into();
    write_json(&record, &r);
    assert_refused(&w.run(&["digest", dir.to_str().unwrap()]));
    assert_eq!(verify(&w, &dir, false).0, Some(125));
    // The deep check rehashes: a recorded narHash that Nix also records but
    // the contents do not match is simulated by editing both the record and
    // the digest, for a path of the closure.
    let (dir, _) = fresh();
    let record = dir.join("nucleus.json");
    let mut r = read_json(&record);
    r["closure"][0]["narHash"] = "sha256-AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into();
    write_json(&record, &r);
    re_sign(&w, &dir);
    let (status, report) = verify(&w, &dir, true);
    assert_eq!(status, Some(1));
    assert!(report.contains("contents hash to"), "{report}");
    // The honest bundles still verify.
    let (dir, digest) = fresh();
    assert_eq!(verify(&w, &dir, true), (Some(0), format!("ok {digest}\n")));
}

// ---------------------------------------------------------------------------
// Input that would pass a check and fail later, or write to the host.

/// Asserts a refusal up front: 125, one line naming the problem, no
/// container state, and `dirs` (host directories handed to the run)
/// exactly as they were.
#[track_caller]
fn assert_refused_leaving_nothing(w: &World, out: &Output, dirs: &[(&std::path::Path, Vec<String>)], what: &str) {
    assert_refused(out);
    assert_eq!(stderr(out).lines().count(), 1, "{what}: {}", stderr(out));
    let left: Vec<String> = common::entries(&w.state_root()).into_iter().filter(|e| e != ".cache").collect();
    assert!(left.is_empty(), "{what}: left in the state root: {left:?}");
    for (dir, before) in dirs {
        assert_eq!(&common::entries(dir), before, "{what}: {dir:?} changed");
    }
}

#[test]
fn input_that_would_fail_late_is_refused_up_front() {
    let w = World::new();
    let hello = hello();
    let dir = w.path("dir");
    std::fs::create_dir_all(dir.join("real/sub")).unwrap();
    std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
    let fifo = w.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let sparse = w.path("sparse-secret");
    std::fs::File::create(&sparse).unwrap().set_len(2 << 30).unwrap();
    let p = |path: &std::path::Path| path.display().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("timeout past 32 bits", vec!["--timeout".into(), "4294967296".into()]),
        ("129-character name", vec!["--name".into(), "n".repeat(129)]),
        ("a thousandth of a CPU", vec!["--cpus".into(), "0.001".into()]),
        ("2 GiB secret", vec!["--secret".into(), format!("{}:/run/secrets/big", p(&sparse))]),
        ("FIFO volume", vec!["-v".into(), format!("{}:/data", p(&fifo))]),
        ("symlink in a volume's parent", vec!["-v".into(), format!("{}/sub:/data", p(&dir.join("link")))]),
        ("symlink in the context's parent", vec!["--context".into(), format!("{}/sub", p(&dir.join("link")))]),
        (
            "symlink in a secret's parent",
            vec!["--secret".into(), format!("{}/sub:/run/secrets/s", p(&dir.join("link")))],
        ),
        ("volume that is a symlink", vec!["-v".into(), format!("{}:/data", p(&dir.join("link")))]),
        // runsc would create the working directory in the (read-only)
        // host directory, and fail there.
        (
            "workdir missing in a read-only volume",
            vec!["-v".into(), format!("{}:/data", p(&dir.join("real"))), "-w".into(), "/data/new".into()],
        ),
    ];
    let before = common::entries(&dir.join("real"));
    for (what, options) in &cases {
        let mut args: Vec<&str> = vec!["run"];
        args.extend(options.iter().map(String::as_str));
        args.extend([hello.as_str(), "--", "/bin/true"]);
        let out = w.run(&args);
        assert_refused_leaving_nothing(&w, &out, &[(&dir.join("real"), before.clone())], what);
    }
    w.assert_clean();
}

#[test]
fn nothing_is_created_in_a_host_directory() {
    let w = World::new();
    let hello = hello();
    let a = w.path("a");
    let b = w.path("b");
    let ctx = w.path("ctx");
    for d in [&a, &b, &ctx] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::create_dir(a.join("exists")).unwrap();
    let secret = w.path("secret");
    std::fs::write(&secret, "s").unwrap();
    let p = |path: &std::path::Path| path.display().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "a volume inside a volume",
            vec!["-v".into(), format!("{}:/data", p(&a)), "-v".into(), format!("{}:/data/sub/deeper", p(&b))],
        ),
        (
            "a tmpfs inside a volume",
            vec!["-v".into(), format!("{}:/data", p(&a)), "--tmpfs".into(), "/data/sub".into()],
        ),
        (
            "a secret inside a volume",
            vec!["-v".into(), format!("{}:/run", p(&a)), "--secret".into(), format!("{}:/run/secrets/t", p(&secret))],
        ),
        (
            "a volume inside the context",
            vec!["--context".into(), p(&ctx), "-v".into(), format!("{}:/context/sub", p(&b))],
        ),
        (
            "a missing workdir in a volume",
            vec!["-v".into(), format!("{}:/data", p(&a)), "-w".into(), "/data/sub/deeper".into()],
        ),
        (
            "a missing workdir in a writable volume",
            vec!["-v".into(), format!("{}:/data:rw", p(&a)), "-w".into(), "/data/sub".into()],
        ),
        ("a missing workdir in the context", vec!["--context".into(), p(&ctx), "-w".into(), "/context/sub".into()]),
    ];
    let dirs = [(a.as_path(), common::entries(&a)), (b.as_path(), Vec::new()), (ctx.as_path(), Vec::new())];
    for (what, options) in &cases {
        let mut args: Vec<&str> = vec!["run"];
        args.extend(options.iter().map(String::as_str));
        args.extend([hello.as_str(), "--", "/bin/true"]);
        assert_refused_leaving_nothing(&w, &w.run(&args), &dirs, what);
        let out_dir = w.path("out");
        let mut bundle: Vec<&str> = vec!["bundle", "--out", out_dir.to_str().unwrap()];
        bundle.extend(args[1..].iter().copied());
        assert_refused_leaving_nothing(&w, &w.run(&bundle), &dirs, what);
        assert!(!out_dir.exists(), "{what}: a refused bundle was left behind");
    }
    // A working directory that is there is fine, read-only or not.
    for (vol, workdir) in [(format!("{}:/data", p(&a)), "/data/exists"), (format!("{}:/data:rw", p(&a)), "/data")] {
        assert_eq!(ok(&w.sh_with(&["-v", &vol, "-w", workdir], "pwd")).trim(), workdir);
    }
    assert_eq!(common::entries(&a), ["exists"]);
    // --out through a symlinked parent writes nothing through it.
    let target = w.path("target");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, w.path("link")).unwrap();
    let out = w.run(&["bundle", "--out", w.path("link/b").to_str().unwrap(), &hello, "--", "/bin/true"]);
    assert_refused(&out);
    assert!(common::entries(&target).is_empty(), "wrote through the symlink");
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// Secrets.

/// Regular files under `dir` whose contents hold `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())))
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Processes whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(text))
        .collect()
}

/// Waits (at most 10 s) until no process mentions `text`.
fn wait_until_gone(text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(text).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(processes_mentioning(text).is_empty(), "still running: {:?}", processes_mentioning(text));
}

/// While the run lives (its workload has printed the secret) and after
/// nucleus (`nucleus_pid`) is killed: the secret is in no file under the
/// state root (it lives on a tmpfs in nucleus's own mount namespace), and
/// no mount of it is left on the host.
fn assert_secret_in_memory_only(
    state: &std::path::Path,
    value: &str,
    mut child: std::process::Child,
    nucleus_pid: u32,
) {
    assert!(files_holding(state, value).is_empty(), "on disk while running: {:?}", files_holding(state, value));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(nucleus_pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    wait_until_gone(state.to_str().unwrap());
    assert!(files_holding(state, value).is_empty(), "on disk after SIGKILL: {:?}", files_holding(state, value));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(state.to_str().unwrap()), "a mount was left on the host:\n{mounts}");
}

/// Waits (at most 20 s) until `state` says the container is gone.
fn discarded(state: impl Fn() -> Output) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while state().status.success() {
        assert!(std::time::Instant::now() < deadline, "the container was never discarded");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn secrets_live_in_memory_only_rootless_or_not() {
    let w = World::new();
    open_world_to_user(&w);
    let value = format!("s3cret-{}", std::process::id());
    let hello = hello();
    // --rootless, as the unprivileged user, with the secret only it reads.
    let home = w.path("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(home.join("secret"), &value).unwrap();
    std::fs::set_permissions(home.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    give_to_user(&home);
    let state = home.join("nucleus");
    let secret = format!("{}:/run/secrets/s", home.join("secret").display());
    let as_user = |args: &[&str]| {
        let mut cmd = as_unprivileged_user(NUCLEUS);
        cmd.arg("--state-root").arg(&state).args(args).current_dir(&home);
        cmd
    };
    for user in ["0", "1000"] {
        let script = "cat /run/secrets/s; echo; id -u";
        let out =
            as_user(&["run", "--rootless", "-u", user, "--secret", &secret, &hello, "--", "/bin/sh", "-c", script])
                .output()
                .unwrap();
        assert_eq!(ok(&out), format!("{value}\n{user}\n"), "as uid {user} inside");
    }
    assert!(files_holding(&state, &value).is_empty());
    let script = "cat /run/secrets/s; echo; sleep 30";
    let mut runuser =
        as_user(&["run", "--rootless", "--name", "sk", "--secret", &secret, &hello, "--", "/bin/sh", "-c", script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    assert_eq!(first_line(&mut runuser), value);
    // runuser's child is nucleus itself (env executes it).
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", runuser.id())).unwrap();
    let nucleus_pid: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    assert_secret_in_memory_only(&state, &value, runuser, nucleus_pid);
    // The supervisor, orphaned, discards the container itself.
    discarded(|| as_user(&["state", "sk"]).output().unwrap());
    // Root, the same.
    let root_secret = w.path("root-secret");
    std::fs::write(&root_secret, &value).unwrap();
    let spec = format!("{}:/run/secrets/s", root_secret.display());
    let mut child = w.spawn_sh("rs", &["--secret", &spec], script);
    assert_eq!(first_line(&mut child), value);
    let pid = child.id();
    assert_secret_in_memory_only(&w.state_root(), &value, child, pid);
    discarded(|| w.run(&["state", "rs"]));
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// Messages.

#[test]
fn messages_never_echo_a_control_character() {
    let w = World::new();
    let hello = hello();
    let evil = "x\n\x1b[31mred\x07";
    let path = format!("/tmp/{evil}");
    let profile = w.path("profile.json");
    std::fs::write(
        &profile,
        format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","{evil}":1}}"#)
            .replace('\n', "\\n")
            .replace('\x1b', "\\u001b")
            .replace('\x07', "\\u0007"),
    )
    .unwrap();
    let hooks = w.path("hooks.json");
    std::fs::write(&hooks, serde_json::json!({"poststop": [{"path": format!("/nix/store/{evil}")}]}).to_string())
        .unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["run".into(), "--name".into(), evil.into(), hello.clone(), "--".into(), "/bin/true".into()],
        vec!["run".into(), "-v".into(), format!("{path}:/data"), hello.clone(), "--".into(), "/bin/true".into()],
        vec![
            "run".into(),
            "--secret".into(),
            format!("{path}:/run/secrets/s"),
            hello.clone(),
            "--".into(),
            "/bin/true".into(),
        ],
        vec!["run".into(), "--context".into(), path.clone(), hello.clone(), "--".into(), "/bin/true".into()],
        vec!["run".into(), "--hostname".into(), evil.into(), hello.clone(), "--".into(), "/bin/true".into()],
        vec!["run".into(), "--env-file".into(), path.clone(), hello.clone(), "--".into(), "/bin/true".into()],
        vec![
            "run".into(),
            "--seccomp-profile".into(),
            profile.display().to_string(),
            hello.clone(),
            "--".into(),
            "/bin/true".into(),
        ],
        vec![
            "run".into(),
            "--hooks".into(),
            hooks.display().to_string(),
            hello.clone(),
            "--".into(),
            "/bin/true".into(),
        ],
        vec!["run".into(), path.clone(), "--".into(), "/bin/true".into()],
        vec!["run".into(), format!("./{evil}"), "--".into(), "/bin/true".into()],
        vec!["state".into(), evil.into()],
        vec!["kill".into(), evil.into()],
        vec!["delete".into(), evil.into()],
        vec!["exec".into(), evil.into(), "--".into(), "/bin/true".into()],
        vec!["verify".into(), path.clone()],
        vec!["digest".into(), path.clone()],
        vec!["hash".into(), path.clone()],
        vec!["--state-root".into(), format!("relative/{evil}"), "ps".into()],
    ];
    for args in &cases {
        let out = w.nucleus().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("nucleus: ") && err.ends_with('\n'), "{args:?}: {err:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(
            !err.trim_end_matches('\n').chars().any(char::is_control),
            "{args:?}: a raw control character: {err:?}"
        );
    }
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// Holes found across module boundaries: the state root inside a volume,
// runsc's place, names shared through runsc's socket namespace, hostile
// files in a bundle directory, and runsc's own words before the workload.

/// runsc's own error line, printed before the workload starts, reaches
/// nucleus's stderr as it is: a command name with a newline and an escape
/// sequence comes out raw, on two lines, beside nucleus's own message.
#[test]
fn runsc_s_own_errors_never_reach_stderr_raw() {
    let w = World::new();
    let out = w.run(&["run", &hello(), "--", "/bin/no\x1b[31m\nsuch"]);
    assert_refused(&out);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(!err.trim_end_matches('\n').chars().any(char::is_control), "{err:?}");
    w.assert_clean();
}

/// A volume holding the state root gives a root workload the state of every
/// container: records `delete --force` trusts, runsc's state, the closure
/// cache.
#[test]
fn a_volume_holding_the_state_root_is_refused() {
    let w = World::new();
    let holder = w.tmp.path().display().to_string();
    let script = "ls /host/state; echo planted > /host/state/planted";
    let out = w.sh_with(&["-v", &format!("{holder}:/host:rw")], script);
    assert_refused(&out);
    assert!(!w.state_root().join("planted").exists(), "the workload wrote into the state root");
    let out = w.sh_with(&["--context", w.state_root().to_str().unwrap()], "ls /context");
    assert_refused(&out);
    w.assert_clean();
}

/// A runsc binary owned by root in a directory the unprivileged user owns:
/// the user can replace it after nucleus checked it, and nucleus runs runsc
/// as root by that path again for every control call.
#[test]
fn a_runsc_in_a_directory_another_user_controls_is_refused() {
    let w = World::new();
    open_world_to_user(&w);
    let bin = w.path("users-bin");
    std::fs::create_dir(&bin).unwrap();
    let runsc = bin.join("runsc");
    std::fs::copy(which("runsc").unwrap(), &runsc).unwrap();
    give_to_user(&bin);
    std::os::unix::fs::chown(&runsc, Some(0), Some(0)).unwrap();
    let out = w.run(&["run", "--runsc", runsc.to_str().unwrap(), &hello(), "--", "/bin/true"]);
    assert_refused(&out);
    assert!(stderr(&out).contains("owned by uid"), "{}", stderr(&out));
    w.assert_clean();
}

/// `verify` of a directory someone else prepared: config.json is a FIFO.
#[test]
fn verify_of_a_hostile_directory_does_not_hang() {
    let w = World::new();
    let dir = w.path("hostile");
    std::fs::create_dir(&dir).unwrap();
    nix::unistd::mkfifo(&dir.join("config.json"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for sub in ["verify", "digest"] {
        let mut child =
            w.nucleus().args([sub, dir.to_str().unwrap()]).stdout(std::process::Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert!(finished, "`nucleus {sub}` hangs on a FIFO");
        assert_eq!(status.code(), Some(125), "{sub}");
    }
}

/// runsc names its control socket after the container id alone, as an
/// abstract socket of the host's network namespace, and nucleus uses the
/// name as the id: an unprivileged user who runs a rootless container of
/// that name first keeps root's container of the same name from starting.
#[test]
fn another_user_cannot_squat_a_container_name() {
    let w = World::new();
    open_world_to_user(&w);
    let home = w.path("home");
    std::fs::create_dir(&home).unwrap();
    give_to_user(&home);
    let name = format!("squat-{}", std::process::id());
    let mut squatter = as_unprivileged_user(NUCLEUS)
        .arg("--state-root")
        .arg(home.join("nucleus"))
        .args(["run", "--rootless", "--name", &name, &hello(), "--", "/bin/sh", "-c", "echo up; sleep 4"])
        .current_dir(&home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(first_line(&mut squatter), "up");
    let out = w.run(&["run", "--name", &name, &hello(), "--", "/bin/sh", "-c", "echo root-ran"]);
    squatter.wait().unwrap();
    assert_eq!(ok(&out), "root-ran\n");
}
