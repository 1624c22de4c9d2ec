//! The conformance checks every backend passes (one test per check and
//! backend), plus backend-specific tests: redb persistence, and etcd (a
//! server started per test, see [`etcd`]).

pub(crate) mod etcd;
mod etcd_members;

use super::*;
use serde::Deserialize;
use tokio::sync::broadcast::error::TryRecvError;

/// One `#[test]` per check and backend: `memory::CHECK`, `redb::CHECK` and
/// `etcd::conformance::CHECK` (ignored unless asked for: it needs an etcd
/// binary, see [`etcd`]).
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $check() {
                    super::$check(&super::MemoryStore::new());
                }
            )*
        }
        mod redb {
            $(
                #[test]
                fn $check() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    super::$check(&super::RedbStore::open(dir.path()).expect("open redb"));
                }
            )*
        }
        mod etcd_conformance {
            $(
                #[test]
                #[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
                fn $check() {
                    let etcd = super::etcd::TestEtcd::start();
                    super::$check(&etcd.store("/conformance/"));
                }
            )*
        }
    };
}

conformance!(
    put_get_overwrite_round_trip,
    delete_reports_whether_key_existed,
    list_prefix_is_sorted_and_bounded,
    batch_reports_net_changes_in_first_touch_order,
    put_batch_writes_every_entry,
    watch_delivers_only_matching_keys_in_commit_order,
    two_watchers_on_one_prefix_both_receive,
    typed_json_helpers_round_trip_and_name_bad_keys,
    guard_fails_the_whole_batch_once_its_key_changed,
    events_carry_their_commit_revision,
);

/// An event as the checks compare it: revision 0 (checked on its own).
fn put_event(key: &str, value: &[u8]) -> StoreEvent {
    StoreEvent {
        key: key.to_owned(),
        kind: EventKind::Put(value.to_vec()),
        revision: 0,
    }
}

fn delete_event(key: &str) -> StoreEvent {
    StoreEvent {
        key: key.to_owned(),
        kind: EventKind::Delete,
        revision: 0,
    }
}

/// `event` without its revision.
pub(crate) fn plain(event: StoreEvent) -> StoreEvent {
    StoreEvent {
        revision: 0,
        ..event
    }
}

fn keys(entries: &[(String, Vec<u8>)]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.as_str()).collect()
}

fn put_get_overwrite_round_trip(s: &dyn Store) {
    assert_eq!(s.get("a").unwrap(), None);
    s.put("a", b"one").unwrap();
    assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"one"[..]));
    s.put("a", b"two").unwrap();
    assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"two"[..]));
    s.put("empty", b"").unwrap();
    assert_eq!(s.get("empty").unwrap(), Some(Vec::new()));
}

fn delete_reports_whether_key_existed(s: &dyn Store) {
    s.put("k", b"v").unwrap();
    assert!(s.delete("k").unwrap());
    assert_eq!(s.get("k").unwrap(), None);
    assert!(!s.delete("k").unwrap());
}

fn list_prefix_is_sorted_and_bounded(s: &dyn Store) {
    for k in [
        "fw/rules/2",
        "fw/rules/1",
        "fw/rulesets/x",
        "fw/s",
        "lb/vips/1",
        "fv",
    ] {
        s.put(k, k.as_bytes()).unwrap();
    }
    let rules = s.list_prefix("fw/rules/").unwrap();
    assert_eq!(keys(&rules), ["fw/rules/1", "fw/rules/2"]);
    assert_eq!(rules[0].1, b"fw/rules/1");
    assert_eq!(
        keys(&s.list_prefix("fw/").unwrap()),
        ["fw/rules/1", "fw/rules/2", "fw/rulesets/x", "fw/s"]
    );
    assert_eq!(s.list_prefix("").unwrap().len(), 6);
    assert!(s.list_prefix("qos/").unwrap().is_empty());
}

fn batch_reports_net_changes_in_first_touch_order(s: &dyn Store) {
    s.put("m/a", b"old").unwrap();
    s.put("m/b", b"old").unwrap();
    s.put("other", b"keep").unwrap();
    let events = s
        .apply(vec![
            Op::delete_prefix("m/"),
            Op::put("m/b", b"new".to_vec()),
            Op::put("m/c", b"new".to_vec()),
            Op::delete("m/c"),
            Op::delete("m/absent"),
            Op::put("m/d", b"d".to_vec()),
        ])
        .unwrap();
    assert_eq!(
        events.into_iter().map(plain).collect::<Vec<_>>(),
        [
            delete_event("m/a"),
            put_event("m/b", b"new"),
            put_event("m/d", b"d"),
        ]
    );
    assert_eq!(keys(&s.list_prefix("").unwrap()), ["m/b", "m/d", "other"]);
}

fn put_batch_writes_every_entry(s: &dyn Store) {
    s.put_batch(vec![
        ("x/1".into(), b"1".to_vec()),
        ("x/2".into(), b"2".to_vec()),
    ])
    .unwrap();
    assert_eq!(
        s.list_prefix("x/").unwrap(),
        [("x/1".into(), b"1".to_vec()), ("x/2".into(), b"2".to_vec())]
    );
}

fn watch_delivers_only_matching_keys_in_commit_order(s: &dyn Store) {
    s.put("fw/before", b"x").unwrap();
    let mut fw = s.watch("fw/");
    let mut all = s.watch("");
    s.put("fw/1", b"a").unwrap();
    s.put("lb/1", b"b").unwrap();
    s.delete("fw/1").unwrap();
    s.delete("fw/never").unwrap();
    assert_eq!(plain(fw.try_recv().unwrap()), put_event("fw/1", b"a"));
    assert_eq!(plain(fw.try_recv().unwrap()), delete_event("fw/1"));
    assert_eq!(fw.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(plain(all.try_recv().unwrap()), put_event("fw/1", b"a"));
    assert_eq!(plain(all.try_recv().unwrap()), put_event("lb/1", b"b"));
    assert_eq!(plain(all.try_recv().unwrap()), delete_event("fw/1"));
    assert_eq!(all.try_recv(), Err(TryRecvError::Empty));
}

fn two_watchers_on_one_prefix_both_receive(s: &dyn Store) {
    let mut a = s.watch("p/");
    let mut b = s.watch("p/");
    drop(s.watch("p/"));
    s.put("p/1", b"v").unwrap();
    assert_eq!(plain(a.try_recv().unwrap()), put_event("p/1", b"v"));
    assert_eq!(plain(b.try_recv().unwrap()), put_event("p/1", b"v"));
}

fn guard_fails_the_whole_batch_once_its_key_changed(s: &dyn Store) {
    let guard = |since| Guard {
        key: "serial".into(),
        since,
    };
    let first = s.apply(vec![Op::put("serial", b"a".to_vec())]).unwrap();
    let r1 = first[0].revision;
    // Unchanged since r1: the batch commits, at a later revision.
    let second = s
        .apply_guarded(
            vec![
                Op::put("serial", b"b".to_vec()),
                Op::put("d/1", b"x".to_vec()),
            ],
            Some(&guard(r1)),
        )
        .unwrap();
    let r2 = second[0].revision;
    assert!(r2 > r1, "{r2} > {r1}");
    assert_eq!(s.changed_at("serial").unwrap(), r2);
    assert_eq!(s.changed_at("absent").unwrap(), 0);
    assert!(second.iter().all(|e| e.revision == r2));
    // Changed at r2, after r1: nothing of the batch is written.
    match s.apply_guarded(
        vec![
            Op::put("serial", b"c".to_vec()),
            Op::put("d/2", b"y".to_vec()),
        ],
        Some(&guard(r1)),
    ) {
        Err(StoreError::Conflict {
            key,
            revision,
            since,
        }) => assert_eq!((key.as_str(), revision, since), ("serial", r2, r1)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.get("serial").unwrap().as_deref(), Some(&b"b"[..]));
    assert_eq!(s.get("d/2").unwrap(), None);
    // A guard at the key's own revision holds; an absent key never changed.
    s.apply_guarded(vec![Op::put("d/3", b"z".to_vec())], Some(&guard(r2)))
        .unwrap();
    let absent = Guard {
        key: "absent".into(),
        since: 0,
    };
    s.apply_guarded(vec![Op::put("d/4", b"w".to_vec())], Some(&absent))
        .unwrap();
    assert_eq!(keys(&s.list_prefix("d/").unwrap()), ["d/1", "d/3", "d/4"]);
}

fn events_carry_their_commit_revision(s: &dyn Store) {
    let mut watch = s.watch("r/");
    let before = s.revision().unwrap();
    let events = s
        .apply(vec![
            Op::put("r/1", b"1".to_vec()),
            Op::put("r/2", b"2".to_vec()),
        ])
        .unwrap();
    let revision = events[0].revision;
    assert!(revision > before, "{revision} > {before}");
    assert!(events.iter().all(|e| e.revision == revision));
    assert_eq!(watch.try_recv().unwrap().revision, revision);
    assert_eq!(watch.try_recv().unwrap().revision, revision);
    assert!(s.revision().unwrap() >= revision);
    let later = s.apply(vec![Op::delete("r/1")]).unwrap();
    assert!(later[0].revision > revision);
    assert_eq!(watch.try_recv().unwrap().revision, later[0].revision);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Rule {
    id: u32,
    name: String,
}

fn typed_json_helpers_round_trip_and_name_bad_keys(s: &dyn Store) {
    let r1 = Rule {
        id: 1,
        name: "web".into(),
    };
    s.put_json("fw/rules/1", &r1).unwrap();
    assert_eq!(s.get_json::<Rule>("fw/rules/1").unwrap(), Some(r1));
    assert_eq!(s.get_json::<Rule>("fw/rules/9").unwrap(), None);
    s.apply(vec![Op::put_json(
        "fw/rules/2",
        &Rule {
            id: 2,
            name: "ssh".into(),
        },
    )
    .unwrap()])
        .unwrap();
    let listed: Vec<(String, Rule)> = s.list_json("fw/rules/").unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].1.name, "ssh");

    s.put("fw/rules/3", b"not json").unwrap();
    match s.list_json::<Rule>("fw/rules/") {
        Err(StoreError::Decode { key, .. }) => assert_eq!(key, "fw/rules/3"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn works_through_arc_dyn_store() {
    let s: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
    s.put_json("k", &5u32).unwrap();
    assert_eq!(s.get_json::<u32>("k").unwrap(), Some(5));
}

#[test]
fn redb_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    {
        let s = RedbStore::open(&data_dir).unwrap();
        s.put("a", b"1").unwrap();
        s.apply(vec![
            Op::put("b", b"2".to_vec()),
            Op::put("c", b"3".to_vec()),
        ])
        .unwrap();
        s.delete("c").unwrap();
    }
    assert!(data_dir.join(redb_store::DB_FILE).is_file());
    let s = RedbStore::open(&data_dir).unwrap();
    assert_eq!(
        s.list_prefix("").unwrap(),
        [("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
    );
}

#[test]
fn redb_open_fails_cleanly_when_dir_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        RedbStore::open(&file),
        Err(StoreError::Dir { .. })
    ));
}
