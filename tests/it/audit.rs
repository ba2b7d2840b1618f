//! The audit trail through the real binary: the command line's account and key changes are
//! recorded and sealed, `vigie audit verify` says the trail is intact, and names the record an
//! edit broke.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;

fn vigie(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(vigie_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn account_and_key_changes_are_recorded_and_tampering_is_named() {
    let certs = Certs::new();
    let config = tempfile::NamedTempFile::new().unwrap();
    let yaml = ConfigBuilder::new(&certs, "http://127.0.0.1:9").build_yaml();
    std::fs::write(config.path(), yaml).unwrap();
    let path = config.path().to_str().unwrap();
    let password = "Thorax-Scanner-Night-2026";

    let out = vigie(
        &[
            "user", "add", "dr.new", "--roles", "doctor", "--config", path,
        ],
        &format!("{password}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = vigie(&["rotate-keys", "--config", path], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = vigie(&["audit", "verify", "--config", path], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("intact: 2 record(s) in 1 file(s), 2 seal(s)"),
        "{stdout}"
    );

    let audit_dir = certs.dir.path().join("state").join("audit");
    let file = std::fs::read_dir(&audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .expect("a trail file");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"type\":\"account_added\""), "{text}");
    assert!(text.contains("\"user\":\"dr.new\""), "{text}");
    assert!(text.contains("\"type\":\"keys_rotated\""), "{text}");
    assert!(!text.contains(password), "the password reached the trail");

    // Somebody renames the account in the trail.
    std::fs::write(&file, text.replace("\"dr.new\"", "\"dr.old\"")).unwrap();
    let out = vigie(&["audit", "verify", "--config", path], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("record 0 was altered"), "{stderr}");
    assert!(stderr.contains(":2: "), "names the line: {stderr}");
    // And the gateway's own command line will not write after the break.
    let out = vigie(&["rotate-keys", "--config", path], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("could not be recorded in the audit trail"),
        "{stderr}"
    );
}
