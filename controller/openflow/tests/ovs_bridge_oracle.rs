//! A real Open vSwitch bridge as the oracle for what a switch reports back:
//! groups and meters we install through our codec, read back with
//! GROUP_DESC / METER_CONFIG requests, decode to what we sent (meters up to
//! [`MeterBand::canonical`]), and Open vSwitch's select-group properties do
//! not exist in OpenFlow 1.3 (see `flowgate_openflow::group`).
//!
//! Each test runs its own `ovsdb-server` and `ovs-vswitchd` on a temporary
//! directory, the switch in a network namespace of its own (`unshare
//! --net`, so its userspace-datapath ports touch nothing on the host), with
//! one `datapath_type=netdev` bridge whose controller is this test, over a
//! Unix socket. Needs root and Open vSwitch (Debian package
//! openvswitch-switch); without them these tests fail saying so rather than
//! passing vacuously.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flowgate_openflow::*;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const BRIDGE: &str = "br0";

/// A command that must be installed, or the test fails saying how to get it.
fn tool(name: &str) -> Command {
    match Command::new(name).arg("--version").output() {
        Ok(out) if out.status.success() => Command::new(name),
        _ => panic!(
            "{name} is not on PATH: these tests run a real Open vSwitch. Install it with \
             `apt-get install -y openvswitch-switch` (and run them as root)."
        ),
    }
}

/// Runs `cmd`, failing the test with its stderr unless it succeeds.
fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} never appeared");
        sleep(Duration::from_millis(10));
    }
}

/// A private Open vSwitch: both daemons are our children, killed on drop
/// (the switch's network namespace, and its ports, go with it).
struct Ovs {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Ovs {
    fn start() -> Ovs {
        assert!(
            Path::new(SCHEMA).exists(),
            "{SCHEMA} missing: install openvswitch-switch"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut ovs = Ovs {
            dir,
            daemons: Vec::new(),
        };
        let db = ovs.path("conf.db");
        let mut create = tool("ovsdb-tool");
        create.arg("create").arg(&db).arg(SCHEMA);
        run(create);
        let mut server = tool("ovsdb-server");
        server
            .arg(&db)
            .arg(format!("--remote=punix:{}", ovs.path("db.sock").display()))
            .arg(format!("--unixctl={}", ovs.path("ovsdb.ctl").display()))
            .arg(format!("--log-file={}", ovs.path("ovsdb.log").display()))
            .arg("--no-chdir");
        ovs.spawn(server);
        wait_for(&ovs.path("db.sock"), "ovsdb-server's socket");
        ovs.vsctl(&["--no-wait", "init"]);
        // The switch gets a network namespace of its own; unshare execs it,
        // so the child we hold is ovs-vswitchd itself.
        tool("ovs-vswitchd");
        let can_unshare = Command::new("unshare")
            .args(["--net", "true"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            can_unshare,
            "`unshare --net` failed: these tests need root (a network namespace \
             for the switch)"
        );
        let mut switch = tool("unshare");
        switch
            .arg("--net")
            .arg("ovs-vswitchd")
            .arg(format!("unix:{}", ovs.path("db.sock").display()))
            .arg(format!("--unixctl={}", ovs.path("vswitchd.ctl").display()))
            .arg(format!("--log-file={}", ovs.path("vswitchd.log").display()))
            .arg("--no-chdir")
            .env("OVS_RUNDIR", ovs.dir.path());
        ovs.spawn(switch);
        ovs.vsctl(&[
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "protocols=OpenFlow13,OpenFlow15",
            "fail_mode=secure",
        ]);
        wait_for(&ovs.mgmt_path(), "the bridge's management socket");
        ovs
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn mgmt_path(&self) -> PathBuf {
        self.path(&format!("{BRIDGE}.mgmt"))
    }

    fn spawn(&mut self, mut cmd: Command) {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        self.daemons.push(child);
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let mut cmd = tool("ovs-vsctl");
        cmd.arg(format!("--db=unix:{}", self.path("db.sock").display()))
            .arg("--timeout=20")
            .args(args);
        run(cmd)
    }

    /// `ovs-ofctl -O <version> <command> <bridge> <args>` over the bridge's
    /// management socket.
    fn ofctl(&self, version: &str, command: &str, args: &[&str]) -> String {
        let mut cmd = tool("ovs-ofctl");
        cmd.args(["-O", version, command])
            .arg(format!("unix:{}", self.mgmt_path().display()))
            .args(args);
        run(cmd)
    }

    /// Makes this test the bridge's controller and completes the HELLO
    /// exchange. (OVS flushes flows, groups and meters when a bridge gains
    /// its first controller, `connmgr_set_controllers`: connect before
    /// installing anything.)
    fn controller(&self) -> Controller {
        let socket = self.path("controller.sock");
        let listener = UnixListener::bind(&socket).expect("controller socket");
        self.vsctl(&[
            "set-controller",
            BRIDGE,
            &format!("unix:{}", socket.display()),
        ]);
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("Open vSwitch never connected to its controller: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let mut controller = Controller {
            stream,
            buf: Vec::new(),
            next_xid: 1,
        };
        controller.send(&Message::Hello(Hello::with_versions(&[OFP_VERSION_1_3])));
        let (_, hello, _) = controller.recv();
        assert!(matches!(hello, Message::Hello(_)), "{hello:?}");
        controller
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for daemon in self.daemons.iter_mut().rev() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

/// Our end of the switch's controller connection.
struct Controller {
    stream: UnixStream,
    buf: Vec<u8>,
    next_xid: u32,
}

impl Controller {
    fn send(&mut self, msg: &Message) -> u32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut out = BytesMut::new();
        encode(xid, msg, &mut out).expect("test messages fit");
        self.stream.write_all(&out).expect("write to the switch");
        xid
    }

    /// The next message from the switch, with its raw bytes, which must
    /// re-encode byte for byte. Echo requests are answered on the way.
    fn recv(&mut self) -> (Header, Message, Vec<u8>) {
        loop {
            while let Some(len) = frame_len(&self.buf).expect("valid OpenFlow framing") {
                let raw: Vec<u8> = self.buf.drain(..len).collect();
                let (header, msg) = decode(&raw).unwrap_or_else(|e| {
                    panic!("our codec rejects the switch's {}: {e}", hex(&raw))
                });
                let mut again = BytesMut::new();
                encode_with_version(header.version, header.xid, &msg, &mut again)
                    .expect("a decoded message fits");
                assert_eq!(hex(&again), hex(&raw), "re-encoding {msg:?}");
                if let Message::EchoRequest(data) = &msg {
                    let mut out = BytesMut::new();
                    encode(header.xid, &Message::EchoReply(data.clone()), &mut out)
                        .expect("an echo reply fits");
                    self.stream.write_all(&out).expect("write to the switch");
                    continue;
                }
                return (header, msg, raw);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the switch closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading from the switch: {e}"),
            }
        }
    }

    /// Sends `msgs` and a barrier; fails on any error the switch returns.
    fn install(&mut self, msgs: &[Message]) {
        for msg in msgs {
            self.send(msg);
        }
        let barrier = self.send(&Message::BarrierRequest);
        loop {
            match self.recv() {
                (h, Message::BarrierReply, _) if h.xid == barrier => return,
                (_, Message::Error(e), _) => panic!("the switch refused: {}", e.describe()),
                _ => {}
            }
        }
    }

    /// The whole reply to a multipart request, parts merged.
    fn multipart(&mut self, body: MultipartRequestBody) -> MultipartReplyBody {
        let xid = self.send(&Message::MultipartRequest(MultipartRequest::new(body)));
        let mut merged: Option<MultipartReplyBody> = None;
        loop {
            let (h, msg, _) = self.recv();
            match msg {
                Message::MultipartReply(reply) if h.xid == xid => {
                    let more = reply.more();
                    match merged.as_mut() {
                        Some(all) => all.merge(reply.body).expect("parts of one reply"),
                        None => merged = Some(reply.body),
                    }
                    if !more {
                        return merged.expect("at least one part");
                    }
                }
                Message::Error(e) => panic!("the switch refused: {}", e.describe()),
                _ => {}
            }
        }
    }

    fn groups(&mut self) -> Vec<GroupDesc> {
        match self.multipart(MultipartRequestBody::GroupDesc) {
            MultipartReplyBody::GroupDesc(mut groups) => {
                groups.sort_by_key(|g| g.group_id);
                groups
            }
            other => panic!("GROUP_DESC answered with {other:?}"),
        }
    }

    fn meters(&mut self) -> Vec<MeterConfig> {
        match self.multipart(MultipartRequestBody::MeterConfig { meter_id: OFPM_ALL }) {
            MultipartReplyBody::MeterConfig(mut meters) => {
                meters.sort_by_key(|m| m.meter_id);
                meters
            }
            other => panic!("METER_CONFIG answered with {other:?}"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn add_group(group_id: u32, group_type: GroupType, buckets: Vec<Bucket>) -> GroupMod {
    GroupMod {
        command: GroupModCommand::Add,
        group_type,
        group_id,
        buckets,
    }
}

fn weighted(weight: u16, port: u32) -> Bucket {
    Bucket {
        weight,
        ..Bucket::new(vec![Action::output(port)])
    }
}

fn watching(port: u32) -> Bucket {
    Bucket {
        watch_port: port,
        ..Bucket::new(vec![Action::output(port)])
    }
}

#[test]
fn ovs_reports_groups_exactly_as_we_sent_them() {
    let ovs = Ovs::start();
    let mut controller = ovs.controller();
    let sent = [
        add_group(1, GroupType::Select, vec![weighted(75, 1), weighted(25, 2)]),
        add_group(
            2,
            GroupType::All,
            vec![Bucket::new(vec![Action::output(1)]), Bucket::new(vec![])],
        ),
        add_group(
            3,
            GroupType::Indirect,
            vec![Bucket::new(vec![Action::output(2)])],
        ),
        add_group(4, GroupType::FastFailover, vec![watching(1), watching(2)]),
        add_group(
            5,
            GroupType::Select,
            vec![Bucket {
                watch_group: 3,
                ..weighted(1, 3)
            }],
        ),
    ];
    controller.install(
        &sent
            .iter()
            .cloned()
            .map(Message::GroupMod)
            .collect::<Vec<_>>(),
    );
    let want: Vec<GroupDesc> = sent.iter().map(GroupDesc::from).collect();
    assert_eq!(controller.groups(), want);
    // OVS's own reading agrees.
    let text = ovs.ofctl("OpenFlow13", "dump-groups", &[]);
    assert!(
        text.contains(
            "group_id=1,type=select,bucket=weight:75,actions=output:1,\
             bucket=weight:25,actions=output:2"
        ),
        "{text}"
    );
}

#[test]
fn ovs_select_group_properties_are_invisible_in_openflow_13() {
    let ovs = Ovs::start();
    let mut controller = ovs.controller();
    let buckets = "bucket=weight:75,output:1,bucket=weight:25,output:2";
    for group in [
        format!("group_id=1,type=select,selection_method=hash,fields(ip_src,tcp_src),{buckets}"),
        format!(
            "group_id=2,type=select,selection_method=dp_hash,selection_method_param=7,{buckets}"
        ),
    ] {
        ovs.ofctl("OpenFlow15", "add-group", &[&group]);
    }
    // The switch has them: OpenFlow 1.5 shows them.
    let text = ovs.ofctl("OpenFlow15", "dump-groups", &[]);
    assert!(
        text.contains("group_id=1,type=select,selection_method=hash,fields(ip_src,tcp_src),"),
        "{text}"
    );
    assert!(
        text.contains("group_id=2,type=select,selection_method=dp_hash,selection_method_param=7,"),
        "{text}"
    );
    // OpenFlow 1.3 reports the plain groups: the same as a GROUP_MOD without
    // them, with no bytes left over after the buckets (`recv` re-encodes).
    // (ovs-ofctl sends `output:N` with max_len 0.)
    let bucket = |weight, port| Bucket {
        weight,
        ..Bucket::new(vec![Action::Output { port, max_len: 0 }])
    };
    let plain = |id| {
        GroupDesc::from(&add_group(
            id,
            GroupType::Select,
            vec![bucket(75, 1), bucket(25, 2)],
        ))
    };
    assert_eq!(controller.groups(), vec![plain(1), plain(2)]);
    let text = ovs.ofctl("OpenFlow13", "dump-groups", &[]);
    assert!(!text.contains("selection_method"), "{text}");
}

#[test]
fn ovs_reports_meters_as_we_sent_them_up_to_a_zero_burst() {
    use meter_flags::{BURST, KBPS, PKTPS, STATS};
    let ovs = Ovs::start();
    let mut controller = ovs.controller();
    let meter = |meter_id, flags, rate, burst_size| MeterMod {
        command: MeterModCommand::Add,
        flags,
        meter_id,
        bands: vec![MeterBand::Drop { rate, burst_size }],
    };
    let sent = [
        meter(1, KBPS | BURST, 1000, 100),
        // No burst: the userspace datapath installs a burst of the rate.
        meter(2, KBPS, 1000, 0),
        meter(3, PKTPS | STATS, 50, 0),
        // A burst without OFPMF_BURST is kept as it is.
        meter(4, KBPS, 1000, 300),
        MeterMod {
            bands: vec![
                MeterBand::Drop {
                    rate: 2000,
                    burst_size: 20,
                },
                MeterBand::Drop {
                    rate: 1000,
                    burst_size: 0,
                },
            ],
            ..meter(5, KBPS | BURST, 0, 0)
        },
    ];
    controller.install(
        &sent
            .iter()
            .cloned()
            .map(Message::MeterMod)
            .collect::<Vec<_>>(),
    );
    let reported = controller.meters();
    let canonical: Vec<MeterConfig> = sent
        .iter()
        .map(|m| MeterConfig {
            bands: m.bands.iter().map(MeterBand::canonical).collect(),
            ..MeterConfig::from(m)
        })
        .collect();
    assert_eq!(reported, canonical);
    // Flags come back as sent: no OFPMF_STATS added, none dropped.
    let flags: Vec<u16> = reported.iter().map(|m| m.flags).collect();
    assert_eq!(flags, sent.iter().map(|m| m.flags).collect::<Vec<_>>());
    // The zero bursts are the only difference.
    assert_ne!(reported[1], MeterConfig::from(&sent[1]));
    assert_eq!(reported[3], MeterConfig::from(&sent[3]));
    // OVS's own reading agrees (it prints burst sizes only with OFPMF_BURST).
    let text = ovs.ofctl("OpenFlow13", "dump-meters", &[]);
    for want in [
        "meter=1 kbps burst bands=\ntype=drop rate=1000 burst_size=100\n",
        "meter=3 pktps stats bands=\ntype=drop rate=50\n",
        "meter=5 kbps burst bands=\ntype=drop rate=2000 burst_size=20\ntype=drop rate=1000 burst_size=1000\n",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
}
