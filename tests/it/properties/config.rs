//! Configuration loaders: any bytes, any tree of the schema, near-valid files, deep or
//! aliased documents and users files never panic, and never echo a secret.

use super::*;

/// A YAML node; scalars are written as they are, so some trees are not valid YAML.
#[derive(Debug, Clone)]
enum Yaml {
    Scalar(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn text(&self) -> String {
        let mut out = String::new();
        self.write(0, &mut out);
        out
    }

    fn write(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self {
            Yaml::Scalar(s) => {
                out.push_str(&pad);
                out.push_str(s);
                out.push('\n');
            }
            Yaml::Seq(items) if items.is_empty() => out.push_str(&format!("{pad}[]\n")),
            Yaml::Map(entries) if entries.is_empty() => out.push_str(&format!("{pad}{{}}\n")),
            Yaml::Seq(items) => {
                for item in items {
                    match item {
                        Yaml::Scalar(s) => out.push_str(&format!("{pad}- {s}\n")),
                        _ => {
                            out.push_str(&format!("{pad}-\n"));
                            item.write(indent + 2, out);
                        }
                    }
                }
            }
            Yaml::Map(entries) => {
                for (k, v) in entries {
                    match v {
                        Yaml::Scalar(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                        _ => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            v.write(indent + 2, out);
                        }
                    }
                }
            }
        }
    }
}

/// The secrets used wherever the configuration takes one (a password, a TOTP key, valid or
/// not): no message may repeat them.
const SECRET: &str = "Sekr3t-Marker-2718";
const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The kinds of value a key of the configuration file takes.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    /// Text, these values being right for the key.
    Text(&'static [&'static str]),
    Number,
    Bool,
    /// A file the loader reads: only paths that cannot hang a read (absent, or a directory).
    File,
    Secret,
}

/// The shape of the configuration file (`config/vigie.example.yaml`), key for key.
#[derive(Debug, Clone)]
enum Shape {
    Leaf(Leaf),
    List(Box<Shape>),
    Map(Vec<(&'static str, Shape)>),
}

const DURATIONS: &[&str] = &["15m", "500ms", "1h 30m", "30s", "12h", "2s", "10m"];
const SIZES: &[&str] = &["16KiB", "32KiB", "1MiB", "4GiB", "8192", "1_000_000"];
const ADDRS: &[&str] = &[
    "\"127.0.0.1:8080\"",
    "\"0.0.0.0:8443\"",
    "\"127.0.0.1:9901\"",
    "\"[::1]:0\"",
];
const HOSTS: &[&str] = &[
    "viewer.test",
    "alias.viewer.test",
    "VIEWER.test",
    "10.0.0.1",
];
const ROLES: &[&str] = &["doctor", "admin", "\"*\"", "radiologist"];

fn schema() -> Shape {
    use Leaf::*;
    use Shape::{Leaf as L, List, Map};
    let text = |good: &'static [&'static str]| L(Text(good));
    let list = |good: &'static [&'static str]| List(Box::new(L(Text(good))));
    let user = Map(vec![
        ("username", text(&["dr.martin", "admin@clinic", "x"])),
        ("password_hash", text(&[HASH])),
        ("totp_secret", L(Secret)),
        ("totp_secret_file", L(File)),
        ("roles", list(ROLES)),
        ("disabled", L(Bool)),
    ]);
    Map(vec![
        ("server_name", text(HOSTS)),
        ("server_aliases", list(HOSTS)),
        (
            "listen",
            Map(vec![
                ("https", text(ADDRS)),
                ("http", text(ADDRS)),
                ("admin", text(ADDRS)),
                ("public_https_port", L(Number)),
            ]),
        ),
        (
            "tls",
            Map(vec![
                ("cert_file", text(&["a.crt"])),
                ("key_file", text(&["a.key"])),
                ("min_version", text(&["\"1.2\"", "\"1.3\""])),
                ("reload_interval", text(DURATIONS)),
            ]),
        ),
        (
            "upstream",
            Map(vec![
                (
                    "url",
                    text(&["\"http://127.0.0.1:8042\"", "http://orthanc:8042"]),
                ),
                ("connect_timeout", text(DURATIONS)),
                ("response_timeout", text(DURATIONS)),
                ("pool_idle_timeout", text(DURATIONS)),
                ("pool_max_idle", L(Number)),
                ("health_path", text(&["/system", "/"])),
                (
                    "credentials",
                    Map(vec![
                        ("username", text(&["gateway"])),
                        ("password", L(Secret)),
                        ("password_file", L(File)),
                        ("password_env", text(&["VIGIE_PROPTEST_UNSET"])),
                    ]),
                ),
            ]),
        ),
        (
            "limits",
            Map(vec![
                ("max_connections", L(Number)),
                ("tls_handshake_timeout", text(DURATIONS)),
                ("header_read_timeout", text(DURATIONS)),
                ("keepalive_timeout", text(DURATIONS)),
                ("max_header_bytes", text(SIZES)),
                ("max_headers", L(Number)),
                ("h2_max_concurrent_streams", L(Number)),
                ("max_request_body", text(SIZES)),
                ("drain_timeout", text(DURATIONS)),
                ("worker_threads", L(Number)),
            ]),
        ),
        ("responses", Map(vec![("no_store", L(Bool))])),
        (
            "log",
            Map(vec![
                ("format", text(&["json", "text", "auto"])),
                ("level", text(&["info", "debug,hyper=warn"])),
                ("access_log", L(Bool)),
            ]),
        ),
        ("state_dir", text(&["/tmp/vigie-proptest-state"])),
        (
            "auth",
            Map(vec![
                ("users", List(Box::new(user))),
                ("users_file", L(File)),
                ("second_factor", text(&["totp", "off"])),
                ("idle_timeout", text(DURATIONS)),
                ("absolute_timeout", text(DURATIONS)),
                ("max_failures", L(Number)),
                ("lockout", text(DURATIONS)),
                ("failure_delay", text(DURATIONS)),
            ]),
        ),
        (
            "access",
            List(Box::new(Map(vec![
                (
                    "path",
                    text(&["/", "/tools/", "/studies/*/modify", "/tools/execute-script"]),
                ),
                ("methods", list(&["GET", "post", "DELETE"])),
                ("roles", list(ROLES)),
            ]))),
        ),
    ])
}

/// A syntactically valid argon2id hash (the loader checks its form, not the password).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzYWx0$\
                    aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// Values the real keys take, values they should not, and YAML's own syntax.
#[rustfmt::skip]
const TEXTS: &[&str] = &[
    "", "~", "null", "0", "-1", "1.5", "true", "no", "\"\"", "''", "viewer.test",
    "viewer.example.org", "VIEWER.TEST", "https://viewer.test/", "a..b", "-a", "[::1]:443",
    "\"0.0.0.0:8443\"", "\"127.0.0.1:9901\"", "\"[::]:0\"", "\"127.0.0.1:0\"", "8443",
    "\"http://127.0.0.1:8042\"", "\"http://127.0.0.1:8443\"", "https://x", "http://u:pw@h",
    "http://h/p?q", "ftp://h", "15m", "0s", "1h 30m", "500ms", "30", "99999999999999999999h",
    "16KiB", "8KiB", "1MiB", "2MiB", "99999999999TiB", "12 parsecs", "totp", "off", "\"1.2\"",
    "\"1.3\"", "1.0", "json", "text", "auto", "info", "debug,hyper=warn", "[{", "a=b[c{d}]",
    "dr.martin", "a b", "admin", "doctor", "\"*\"", "GET", "get", "DELETE", "B@D", "/", "/tools/",
    "/tools/execute-script", "/studies/*/modify", "/a*", "/../x", "/%2e", "x", "GEZDGNBV", "!!!",
    "/tmp/vigie-proptest-state", "!!binary aGk=", "!!str 1", "&a x", "*a", "*b", "{", "[", "]",
    "}", "- x", "|", ">", "#", "%YAML 1.2", "---", "...", "? x", ": x", "'q", "\"q", "\\", "é",
    "\u{0}", "\u{feff}", "\t", "<<: *a",
];

/// Mostly quoted strings (JSON strings are YAML double-quoted scalars), so that most files
/// parse and validation runs; sometimes the raw text, YAML syntax and all.
fn text_value() -> BoxedStrategy<String> {
    let quoted = |s: String| serde_json::to_string(&s).unwrap_or_default();
    prop_oneof![
        6 => select(TEXTS).prop_map(move |s| quoted(s.to_owned())),
        2 => select(TEXTS).prop_map(String::from),
        1 => Just(HASH.to_owned()),
        1 => "\\PC{0,16}",
        1 => any::<String>().prop_map(quoted),
    ]
    .boxed()
}

fn leaf_value(leaf: Leaf) -> BoxedStrategy<String> {
    match leaf {
        Leaf::Text([]) => text_value(),
        Leaf::Text(good) => prop_oneof![
            2 => select(good).prop_map(String::from),
            1 => text_value(),
        ]
        .boxed(),
        Leaf::Number => prop_oneof![
            3 => (0u32..200).prop_map(|n| n.to_string()),
            1 => select(&[
                "0", "-1", "65535", "65536", "4294967296", "18446744073709551616", "1e3",
                "0x10", "1_000", "+5", "1.0", ".inf", "\"5\"",
            ][..])
            .prop_map(String::from),
        ]
        .boxed(),
        Leaf::Bool => prop_oneof![
            3 => select(&["true", "false"][..]),
            1 => select(&["yes", "no", "on", "True", "~", "1"][..]),
        ]
        .prop_map(String::from)
        .boxed(),
        Leaf::File => select(&["", "/", "/nonexistent/vigie-proptest", "\"\""][..])
            .prop_map(String::from)
            .boxed(),
        Leaf::Secret => select(&[SECRET, TOTP_SECRET, "''"][..])
            .prop_map(String::from)
            .boxed(),
    }
}

/// Anything at all where a key expects one shape: scalars, lists or mappings of scalars.
fn stray() -> BoxedStrategy<Yaml> {
    let scalar = text_value().prop_map(Yaml::Scalar);
    prop_oneof![
        3 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..3).prop_map(Yaml::Seq),
        1 => prop::collection::vec((select(&["x", "path", "username", "<<"][..]), scalar), 0..3)
            .prop_map(|v| Yaml::Map(v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ]
    .boxed()
}

/// A tree of the configuration's shape, mostly of the right types, with stray values and
/// unknown keys mixed in.
fn shaped(shape: &Shape) -> BoxedStrategy<Yaml> {
    shaped_with(shape, 0.7)
}

/// [`shaped`], each key present with probability `present`.
fn shaped_with(shape: &Shape, present: f64) -> BoxedStrategy<Yaml> {
    let right = match shape {
        Shape::Leaf(leaf) => leaf_value(*leaf).prop_map(Yaml::Scalar).boxed(),
        Shape::List(item) => prop::collection::vec(shaped_with(item, present), 0..3)
            .prop_map(Yaml::Seq)
            .boxed(),
        Shape::Map(keys) => {
            let entries: Vec<BoxedStrategy<Option<(String, Yaml)>>> = keys
                .iter()
                .map(|(k, s)| {
                    let k = (*k).to_owned();
                    prop::option::weighted(present, shaped_with(s, present))
                        .prop_map(move |v| v.map(|v| (k.clone(), v)))
                        .boxed()
                })
                .collect();
            (entries, prop::option::weighted(0.02, stray()))
                .prop_map(|(entries, unknown)| {
                    let mut e: Vec<(String, Yaml)> = entries.into_iter().flatten().collect();
                    if let Some(v) = unknown {
                        e.push(("unknown_key".into(), v));
                    }
                    Yaml::Map(e)
                })
                .boxed()
        }
    };
    prop_oneof![40 => right, 1 => stray()].boxed()
}

/// A configuration close to valid: every required key right, the rest random.
fn near_valid() -> BoxedStrategy<String> {
    let Shape::Map(top) = schema() else {
        unreachable!()
    };
    let optional: Vec<(&'static str, Shape)> = top
        .into_iter()
        .filter(|(k, _)| !["server_name", "listen", "tls", "upstream"].contains(k))
        .collect();
    (shaped_with(&Shape::Map(optional), 0.4), any::<bool>())
        .prop_map(|(rest, second_factor_off)| {
            let mut text = String::from(
                "server_name: viewer.test\nlisten:\n  https: \"127.0.0.1:8443\"\n\
                 tls:\n  cert_file: a.crt\n  key_file: a.key\n\
                 upstream:\n  url: \"http://127.0.0.1:8042\"\n",
            );
            let mut rest = rest;
            // Users without TOTP secrets then pass, and the rest of their entry is checked.
            if second_factor_off
                && let Yaml::Map(top) = &mut rest
                && let Some((_, Yaml::Map(auth))) = top.iter_mut().find(|(k, _)| k == "auth")
            {
                auth.retain(|(k, _)| k != "second_factor");
                auth.push(("second_factor".into(), Yaml::Scalar("off".into())));
            }
            text.push_str(&rest.text());
            text
        })
        .boxed()
}

/// What holds of any outcome: an error lists at least one error, each with a YAML path and a
/// message; a success carries only warnings and a configuration within its documented
/// bounds; and no message repeats a secret.
fn check_outcome(
    text: &str,
    outcome: Result<(Config, Vec<vigie::config::Problem>), ConfigError>,
) -> Result<(), TestCaseError> {
    match outcome {
        Err(e) => {
            let problems = e.problems();
            prop_assert!(
                problems.iter().any(|p| p.severity == Severity::Error),
                "{text}\n{problems:?}"
            );
            for p in &problems {
                prop_assert!(!p.path.is_empty() && !p.message.is_empty(), "{text}\n{p:?}");
            }
            let shown = e.to_string();
            prop_assert!(
                !shown.contains(SECRET) && !shown.contains(TOTP_SECRET),
                "{text}\n{e}"
            );
        }
        Ok((c, warnings)) => {
            for w in &warnings {
                prop_assert_eq!(w.severity, Severity::Warning);
                let shown = w.to_string();
                prop_assert!(
                    !shown.contains(SECRET) && !shown.contains(TOTP_SECRET),
                    "{text}\n{w}"
                );
            }
            prop_assert!(!c.server_name.is_empty());
            prop_assert!((8192..=1 << 20).contains(&c.limits.max_header_bytes));
            prop_assert!(c.limits.max_connections >= 1 && c.limits.max_headers >= 1);
            prop_assert!(c.auth.max_failures >= 1);
            prop_assert!(c.auth.idle_timeout <= c.auth.absolute_timeout);
            for d in [
                c.limits.header_read_timeout,
                c.limits.keepalive_timeout,
                c.limits.tls_handshake_timeout,
                c.upstream.connect_timeout,
                c.auth.idle_timeout,
            ] {
                prop_assert!(!d.is_zero(), "{}", text);
            }
            prop_assert!(c.upstream.health_path.starts_with('/'));
            for rule in c.access.iter().flatten() {
                prop_assert!(rule.path.starts_with('/') && !rule.path.contains(".."));
            }
            for u in &c.auth.users {
                prop_assert!(
                    vigie::config::valid_username(&u.username),
                    "{:?}",
                    u.username
                );
                prop_assert!(!c.auth.second_factor || u.disabled || u.totp_secret.is_some());
            }
        }
    }
    Ok(())
}

/// Random users-file contents: a list of user mappings, or anything.
fn users_file_text() -> BoxedStrategy<String> {
    let Shape::Map(top) = schema() else {
        unreachable!()
    };
    let users = top
        .into_iter()
        .find(|(k, _)| *k == "auth")
        .and_then(|(_, auth)| match auth {
            Shape::Map(keys) => keys
                .into_iter()
                .find(|(k, _)| *k == "users")
                .map(|(_, s)| s),
            _ => None,
        })
        .unwrap_or(Shape::Leaf(Leaf::Text(&[])));
    prop_oneof![
        3 => shaped(&users).prop_map(|y| y.text()),
        1 => prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(cases(300))]

    /// Any bytes (read as lossy UTF-8) give a configuration or errors with their YAML path,
    /// never a panic.
    #[test]
    fn config_from_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        check_outcome(&text, Config::from_yaml(&text))?;
    }

    /// Any tree of the real keys with random values gives a configuration or errors with their
    /// YAML path, never a panic; a configuration accepted is within its documented bounds.
    #[test]
    fn config_from_any_tree(tree in shaped(&schema())) {
        let text = tree.text();
        check_outcome(&text, Config::from_yaml(&text))?;
    }

    /// The same, starting from a file whose required keys are right, so that validation (not
    /// only YAML typing) runs on the random part.
    #[test]
    fn config_near_valid(text in near_valid()) {
        check_outcome(&text, Config::from_yaml(&text))?;
    }

    /// Deep nesting (flow or block, under a key that takes a list or at the top) and many
    /// aliases give an error (these files lack the required keys), never a stack overflow.
    #[test]
    fn config_deep_or_aliased(
        key in select(&["", "access:\n", "server_aliases:\n", "auth:\n  users:\n"][..]),
        opener in select(&["[", "{a: ", "- ", "[{a: [", "? "][..]),
        depth in 1usize..5000,
        aliases in any::<bool>(),
    ) {
        let mut text = format!("{key}{}", opener.repeat(depth));
        if aliases {
            // One anchored rule repeated: the typed loader leaves no room for nested expansion.
            let roles = ["doctor"; 10].join(", ");
            text = format!("access:\n  - &r {{path: /, roles: [{roles}]}}\n");
            text.push_str(&"  - *r\n".repeat(depth % 64));
        }
        let outcome = Config::from_yaml(&text);
        prop_assert!(outcome.is_err(), "{}", text);
        check_outcome(&text, outcome)?;
    }

    /// Any `auth.users_file` contents give accounts or errors naming `auth.users_file`, never
    /// a panic; no message repeats a TOTP secret.
    #[test]
    fn users_file_from_anything(contents in users_file_text(), off in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.yaml");
        std::fs::write(&path, &contents).unwrap();
        let text = format!(
            "server_name: viewer.test\nlisten:\n  https: \"127.0.0.1:8443\"\n\
             tls:\n  cert_file: a.crt\n  key_file: a.key\n\
             upstream:\n  url: \"http://127.0.0.1:8042\"\n\
             auth:\n  second_factor: {}\n  users_file: {:?}\n",
            if off { "off" } else { "totp" },
            path.display().to_string(),
        );
        let outcome = Config::from_yaml(&text);
        if let Err(e) = &outcome {
            prop_assert!(
                e.problems().iter().any(|p| p.path.starts_with("auth.users_file")),
                "{contents}\n{e}"
            );
        }
        check_outcome(&contents, outcome)?;
    }
}
