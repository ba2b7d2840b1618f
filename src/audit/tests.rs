//! The trail against tampering: every way of altering it is named by `verify`, on real files.

use time::macros::datetime;

use super::chain::{self, GENESIS, Line};
use super::*;

fn event(n: u64) -> Event {
    Event::KeysRotated {
        kid: format!("k{n}"),
        end_all_sessions: false,
        by: Operator {
            command_line: true,
            os_user: Some("root".into()),
        },
    }
}

/// Five records on 1 March, three on 2 March (the day change seals the first file), sealed.
fn trail() -> (tempfile::TempDir, AuditPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::under(dir.path());
    let mut log = AuditLog::open(&paths).unwrap();
    for n in 0..5 {
        log.append(datetime!(2026-03-01 10:00 UTC), &event(n))
            .unwrap();
    }
    for n in 5..8 {
        log.append(datetime!(2026-03-02 09:00 UTC), &event(n))
            .unwrap();
    }
    log.seal(datetime!(2026-03-02 09:01 UTC)).unwrap();
    (dir, paths)
}

fn day1(paths: &AuditPaths) -> std::path::PathBuf {
    paths.dir.join("audit-2026-03-01.jsonl")
}

fn day2(paths: &AuditPaths) -> std::path::PathBuf {
    paths.dir.join("audit-2026-03-02.jsonl")
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write_lines(path: &std::path::Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn broken(paths: &AuditPaths) -> Broken {
    *verify(paths).expect_err("the tampering went unnoticed")
}

#[test]
fn an_intact_trail_verifies_and_carries_on_after_a_restart() {
    let (_dir, paths) = trail();
    let v = verify(&paths).unwrap();
    assert_eq!((v.files, v.records, v.seals, v.unsealed), (2, 8, 2, 0));
    // Day 1: five records and the seal the day change wrote.
    let first = lines(&day1(&paths));
    assert_eq!(first.len(), 6);
    assert!(first[5].contains("\"seal\""), "{}", first[5]);
    // The chain runs on across files and restarts.
    let mut log = AuditLog::open(&paths).unwrap();
    assert_eq!(
        log.append(datetime!(2026-03-02 10:00 UTC), &event(9))
            .unwrap(),
        v.next_seq
    );
    log.sync().unwrap();
    let v2 = verify(&paths).unwrap();
    assert_eq!((v2.records, v2.unsealed), (9, 1));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.dir), 0o700);
        assert_eq!(mode(&day1(&paths)), 0o600);
        assert_eq!(mode(&paths.key), 0o600);
        assert_eq!(mode(&paths.anchor), 0o600);
    }
}

#[test]
fn an_edited_record_is_named() {
    let (_dir, paths) = trail();
    let mut l = lines(&day1(&paths));
    l[2] = l[2].replace("\"k2\"", "\"kX\"");
    write_lines(&day1(&paths), &l);
    let b = broken(&paths);
    assert_eq!((b.line, b.seq), (4, Some(3)), "{b}");
    assert!(b.what.contains("record 2 was altered"), "{b}");
}

#[test]
fn a_deleted_record_is_named() {
    let (_dir, paths) = trail();
    let mut l = lines(&day1(&paths));
    l.remove(1);
    write_lines(&day1(&paths), &l);
    let b = broken(&paths);
    assert!(b.what.contains("record 1 is missing"), "{b}");
    // A whole day's file removed: its records are missing.
    let (_dir, paths) = trail();
    std::fs::remove_file(day1(&paths)).unwrap();
    let b = broken(&paths);
    assert!(b.what.contains("records 0 to 5 are missing"), "{b}");
}

#[test]
fn reordered_records_are_named() {
    let (_dir, paths) = trail();
    let mut l = lines(&day2(&paths));
    l.swap(0, 1);
    write_lines(&day2(&paths), &l);
    let b = broken(&paths);
    assert!(
        b.what.contains("record 6 is missing") || b.what.contains("out of order"),
        "{b}"
    );
    assert_eq!(b.file, day2(&paths));
}

#[test]
fn a_truncated_trail_is_named() {
    // The last day cut down to its first record: the anchor remembers the seal.
    let (_dir, paths) = trail();
    let l = lines(&day2(&paths));
    write_lines(&day2(&paths), &l[..1]);
    let b = broken(&paths);
    assert!(b.what.contains("truncated"), "{b}");
    assert!(b.what.contains("the last record left is 6"), "{b}");
    // A line cut in the middle of its write.
    let (_dir, paths) = trail();
    let mut text = std::fs::read_to_string(day2(&paths)).unwrap();
    text.truncate(text.len() - 10);
    std::fs::write(day2(&paths), text).unwrap();
    assert!(broken(&paths).what.contains("incomplete"));
}

#[test]
fn a_trail_rewritten_and_resealed_with_another_key_is_named() {
    let (_dir, paths) = trail();
    // The forger changes record 1, recomputes every link and seals with a key of their own.
    let mut prev = GENESIS.to_string();
    let mut rewrite = |path: &std::path::Path| {
        let mut out = Vec::new();
        for raw in lines(path) {
            let mut line: Line = serde_json::from_str(&raw).unwrap();
            line.prev = prev.clone();
            if line.seq == 1 {
                line.event = Some(serde_json::json!({"type": "keys_rotated", "kid": "forged"}));
            }
            if line.seal.is_some() {
                line.seal = Some(chain::seal_mac(b"the forger's key", line.seq, &line.prev));
            }
            let text = serde_json::to_string(&line).unwrap();
            prev = chain::hash(text.as_bytes());
            out.push(text);
        }
        write_lines(path, &out);
    };
    rewrite(&day1(&paths));
    rewrite(&day2(&paths));
    let b = broken(&paths);
    assert_eq!((b.seq, b.line), (Some(5), 6), "{b}");
    assert!(b.what.contains("seal 5 does not verify"), "{b}");
    // A different key file (the real one lost or swapped) fails the same way.
    let (_dir, paths) = trail();
    std::fs::write(&paths.key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    assert!(broken(&paths).what.contains("does not verify"));
}

#[test]
fn a_line_cut_by_a_crash_is_removed_and_the_removal_recorded() {
    let (_dir, paths) = trail();
    let mut log = AuditLog::open(&paths).unwrap();
    log.append(datetime!(2026-03-02 11:00 UTC), &event(20))
        .unwrap();
    log.sync().unwrap();
    drop(log);
    // The crash: half of the next line reached the disk.
    let partial = "{\"seq\":11,\"time\":\"2026-03-02T11:00";
    let mut text = std::fs::read_to_string(day2(&paths)).unwrap();
    text.push_str(partial);
    std::fs::write(day2(&paths), &text).unwrap();
    assert!(broken(&paths).what.contains("incomplete"));
    let log = AuditLog::open(&paths).unwrap();
    drop(log);
    let v = verify(&paths).unwrap();
    assert_eq!(v.unsealed, 0, "the removal is sealed at once");
    // The removal is recorded today, in today's file: the newest one.
    let newest = super::verify::trail_files(&paths.dir)
        .unwrap()
        .pop()
        .unwrap();
    let last_record = lines(&newest)
        .into_iter()
        .rev()
        .find(|l| l.contains("\"event\""))
        .unwrap();
    assert!(
        last_record.contains("\"type\":\"torn_line_removed\""),
        "{last_record}"
    );
    assert!(
        last_record.contains(&format!("\"bytes\":{}", partial.len())),
        "{last_record}"
    );
    // The record before the crash is still there.
    assert!(
        std::fs::read_to_string(day2(&paths))
            .unwrap()
            .contains("\"k20\"")
    );
}

#[test]
fn the_writer_refuses_to_carry_on_after_a_break() {
    let (_dir, paths) = trail();
    let mut l = lines(&day1(&paths));
    l[0] = l[0].replace("\"k0\"", "\"k9\"");
    write_lines(&day1(&paths), &l);
    let e = AuditLog::open(&paths).unwrap_err();
    assert!(matches!(e, AuditError::Broken(_)), "{e}");
    assert!(e.to_string().contains("record 0 was altered"), "{e}");
}

#[test]
fn retention_deletes_old_days_records_it_and_the_trail_still_verifies() {
    let (_dir, paths) = trail();
    let mut log = AuditLog::open(&paths).unwrap();
    // On 2 April with 31 days kept: 1 March goes, 2 March stays.
    let now = datetime!(2026-04-02 12:00 UTC);
    let deleted = log.prune(now, std::time::Duration::from_secs(31 * 86_400));
    assert_eq!(deleted.unwrap(), 1);
    assert!(!day1(&paths).exists());
    assert!(day2(&paths).exists());
    let v = verify(&paths).expect("the trail after retention verifies");
    // Records 0..=5 (five events and the day-change seal) are gone.
    assert_eq!(v.first_seq, 6);
    let last = std::fs::read_to_string(paths.dir.join("audit-2026-04-02.jsonl")).unwrap();
    let pruned: Line = serde_json::from_str(last.lines().next().unwrap()).unwrap();
    let event = pruned.event.unwrap();
    assert_eq!(event["type"], "trail_pruned");
    assert_eq!(event["files"][0], "audit-2026-03-01.jsonl");
    assert_eq!(event["first_seq"], 0);
    assert_eq!(event["last_seq"], 5);
    // Nothing more to delete the same day.
    assert_eq!(
        log.prune(now, std::time::Duration::from_secs(31 * 86_400))
            .unwrap(),
        0
    );
}

#[test]
fn a_deletion_not_made_by_retention_is_still_noticed() {
    let (_dir, paths) = trail();
    let mut log = AuditLog::open(&paths).unwrap();
    log.prune(
        datetime!(2026-04-02 12:00 UTC),
        std::time::Duration::from_secs(31 * 86_400),
    )
    .unwrap();
    drop(log);
    // Someone deletes the first kept day as well.
    std::fs::remove_file(day2(&paths)).unwrap();
    let b = broken(&paths);
    assert!(b.what.contains("missing"), "{b}");
    // Or forges the start record to hide it.
    let (_dir, paths) = trail();
    let mut log = AuditLog::open(&paths).unwrap();
    log.prune(
        datetime!(2026-04-02 12:00 UTC),
        std::time::Duration::from_secs(31 * 86_400),
    )
    .unwrap();
    drop(log);
    let text = std::fs::read_to_string(&paths.start).unwrap();
    std::fs::write(&paths.start, text.replace("\"seq\":6", "\"seq\":9")).unwrap();
    let b = broken(&paths);
    assert!(b.what.contains("start record"), "{b}");
}

#[test]
fn a_crash_between_the_start_record_and_the_deletion_leaves_a_sound_trail() {
    let (_dir, paths) = trail();
    let mut log = AuditLog::open(&paths).unwrap();
    let saved = std::fs::read(day1(&paths)).unwrap();
    log.prune(
        datetime!(2026-04-02 12:00 UTC),
        std::time::Duration::from_secs(31 * 86_400),
    )
    .unwrap();
    drop(log);
    // As if the file had not been deleted yet.
    std::fs::write(day1(&paths), saved).unwrap();
    verify(&paths).expect("lines before the start are ignored");
}

#[test]
fn two_writers_on_one_trail_carry_on_from_each_other() {
    // The gateway serves while `vigie user add` records (docker-check.sh found the break).
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::under(dir.path());
    let mut gateway = AuditLog::open(&paths).unwrap();
    gateway
        .append(datetime!(2026-03-01 10:00 UTC), &event(0))
        .unwrap();
    let mut command_line = AuditLog::open(&paths).unwrap();
    command_line
        .append(datetime!(2026-03-01 10:01 UTC), &event(1))
        .unwrap();
    command_line.seal(datetime!(2026-03-01 10:01 UTC)).unwrap();
    gateway
        .append(datetime!(2026-03-01 10:02 UTC), &event(2))
        .unwrap();
    // The next day: the command line writes first, then the gateway seals.
    command_line
        .append(datetime!(2026-03-02 08:00 UTC), &event(3))
        .unwrap();
    gateway.seal(datetime!(2026-03-02 08:01 UTC)).unwrap();
    let v = verify(&paths).expect("one chain");
    assert_eq!(v.records, 4);
    assert_eq!(v.unsealed, 0);
    // And the lock file is private, and not taken for a trail file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let lock = std::fs::metadata(paths.dir.join(".writer.lock")).unwrap();
        assert_eq!(lock.permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(v.files, 2);
}
