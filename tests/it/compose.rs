//! The container setup's rules, read from the repository's files without a Docker engine:
//! `docker/compose.yaml` (Orthanc reachable only through Vigie, secrets as files, the gateway
//! hardened, the audit trail on a volume of its own), `docker/vigie.yaml` (in step with compose
//! and with the Orthanc preset), `docker/Dockerfile` (the image's user, entry point, health
//! check, paths, volumes) and `.dockerignore`.
//! One test per rule; each failure says which file to change and how. What needs processes
//! (hadolint, the binary run as the image runs it) stays in `scripts/docker-check.sh`.
//! Longer than 500 lines: 26 rules, each with the message that says what to change; it uses
//! nothing from `support/` (no gateway runs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// The files, parsed.
struct Setup {
    compose: Value,
    vigie_yaml: Value,
    preset: Value,
    dockerfile: Vec<(String, String)>,
    dockerignore: Vec<String>,
    cargo_toml: String,
}

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn setup() -> Setup {
    Setup {
        compose: yaml("docker/compose.yaml"),
        vigie_yaml: yaml("docker/vigie.yaml"),
        preset: yaml("config/orthanc.example.yaml"),
        dockerfile: instructions(&read("docker/Dockerfile")),
        dockerignore: read(".dockerignore")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
        cargo_toml: read("Cargo.toml"),
    }
}

/// The Dockerfile's instructions as (KEYWORD, arguments): continuation lines joined, comment
/// lines between instructions dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if cur.is_empty() && line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        let logical = cur.trim();
        if !logical.is_empty() {
            let (kw, args) = logical
                .split_once(char::is_whitespace)
                .unwrap_or((logical, ""));
            out.push((kw.to_ascii_uppercase(), args.trim().to_string()));
        }
        cur.clear();
    }
    out
}

impl Setup {
    fn service(&self, name: &str) -> &Value {
        let svc = &self.compose["services"][name];
        assert!(
            svc.is_object(),
            "docker/compose.yaml: services.{name} is missing; the setup needs both `vigie` and `orthanc`"
        );
        svc
    }

    fn services(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.compose["services"].as_object().into_iter().flatten()
    }

    fn network_internal(&self, name: &str) -> bool {
        self.compose["networks"][name]["internal"] == Value::Bool(true)
    }

    fn all(&self, kw: &str) -> Vec<&str> {
        self.dockerfile
            .iter()
            .filter(|(k, _)| k == kw)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    fn last(&self, kw: &str) -> &str {
        self.all(kw).last().copied().unwrap_or("")
    }

    /// The paths the Dockerfile's VOLUME instructions declare, in JSON or in plain form.
    fn volumes(&self) -> BTreeSet<String> {
        self.all("VOLUME")
            .iter()
            .flat_map(|a| {
                json_list(a).unwrap_or_else(|| a.split_whitespace().map(String::from).collect())
            })
            .map(|p| p.trim_end_matches('/').to_string())
            .collect()
    }

    /// Whether a `COPY --chown=65532:65532` creates `target` (the trick that makes a fresh named
    /// volume, which Docker fills from the image, writable by the gateway).
    fn copied_for_image_user(&self, target: &str) -> bool {
        self.all("COPY").iter().any(|a| {
            a.contains("--chown=65532:65532")
                && a.split_whitespace()
                    .last()
                    .is_some_and(|t| t.trim_end_matches('/') == target)
        })
    }

    /// docker/vigie.yaml's `audit.dir` as written ("" when unset).
    fn audit_dir(&self) -> String {
        text(&self.vigie_yaml["audit"]["dir"])
    }

    /// Where the gateway writes the trail: `audit.dir`, or `state_dir/audit` when unset.
    fn effective_audit_dir(&self) -> String {
        match self.audit_dir() {
            d if d.is_empty() => format!("{}/audit", text(&self.vigie_yaml["state_dir"])),
            d => d,
        }
    }

    /// Whether `name` is a named volume declared under the top-level `volumes:`.
    fn declared_volume(&self, name: &str) -> bool {
        self.compose["volumes"]
            .as_object()
            .is_some_and(|v| v.contains_key(name))
    }

    /// The vigie service's published ports: host port → container port.
    fn vigie_published(&self) -> BTreeMap<String, String> {
        published(self.service("vigie"))
    }

    /// docker/vigie.yaml's `upstream.credentials.password_file`, and the compose secret it names.
    fn password_secret(&self) -> (String, Option<String>) {
        let file = text(&self.vigie_yaml["upstream"]["credentials"]["password_file"]);
        let secret = file.strip_prefix("/run/secrets/").map(String::from);
        (file, secret)
    }
}

/// A scalar as compose reads it ("true", "8443"), or "" when absent.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(text).collect()
}

/// A service's networks: the project's default network (not internal) when none is named.
fn service_networks(svc: &Value) -> Vec<String> {
    match &svc["networks"] {
        Value::Null => vec!["default".into()],
        Value::Array(a) => a.iter().map(text).collect(),
        Value::Object(m) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn published(svc: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in svc["ports"].as_array().into_iter().flatten() {
        if p.is_object() {
            out.insert(text(&p["published"]), text(&p["target"]));
        } else {
            let spec = text(p);
            let parts: Vec<&str> = spec.split('/').next().unwrap_or("").split(':').collect();
            let target = parts.last().copied().unwrap_or("").to_string();
            let host = if parts.len() >= 2 {
                parts[parts.len() - 2]
            } else {
                ""
            };
            out.insert(host.to_string(), target);
        }
    }
    out
}

/// A service's environment as name → value, whether written as a map or as `NAME=value` items.
fn environment(svc: &Value) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Value::Array(a) => a
            .iter()
            .map(|item| {
                let s = text(item);
                match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (s, String::new()),
                }
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A service's mounts: container path → (source, read-only).
fn mounts(svc: &Value) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    for v in svc["volumes"].as_array().into_iter().flatten() {
        if v.is_object() {
            out.insert(
                text(&v["target"]),
                (text(&v["source"]), v["read_only"] == Value::Bool(true)),
            );
        } else {
            let spec = text(v);
            let parts: Vec<&str> = spec.split(':').collect();
            if parts.len() >= 2 {
                let ro = parts
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "ro"));
                out.insert(parts[1].to_string(), (parts[0].to_string(), ro));
            }
        }
    }
    out
}

fn port_of(addr: &Value) -> String {
    let a = text(addr);
    a.rsplit_once(':').map_or(a.clone(), |(_, p)| p.to_string())
}

/// "MAJOR.MINOR" → (major, minor).
fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn json_list(text: &str) -> Option<Vec<String>> {
    serde_json::from_str(text).ok()
}

#[test]
fn orthanc_publishes_no_port() {
    let s = setup();
    let o = s.service("orthanc");
    let ports = strings(&o["ports"]);
    assert!(
        ports.is_empty() && o["network_mode"].is_null(),
        "docker/compose.yaml: services.orthanc publishes {ports:?} (network_mode {}): remove its \
         `ports:` and `network_mode:`; Orthanc is reached only through Vigie",
        o["network_mode"]
    );
}

#[test]
fn orthanc_is_only_on_internal_networks() {
    let s = setup();
    let nets = service_networks(s.service("orthanc"));
    let open: Vec<_> = nets.iter().filter(|n| !s.network_internal(n)).collect();
    assert!(
        !nets.is_empty() && open.is_empty(),
        "docker/compose.yaml: services.orthanc is on networks that are not `internal: true`: \
         {open:?}; put it only on the backend network and mark that network `internal: true`"
    );
}

#[test]
fn vigie_publishes_443_and_80_onto_its_listeners() {
    let s = setup();
    let listen = &s.vigie_yaml["listen"];
    let want = BTreeMap::from([
        ("443".to_string(), port_of(&listen["https"])),
        ("80".to_string(), port_of(&listen["http"])),
    ]);
    let got = s.vigie_published();
    assert_eq!(
        got, want,
        "docker/compose.yaml: services.vigie.ports must publish exactly 443 and 80 onto the ports \
         docker/vigie.yaml listens on (listen.https, listen.http)"
    );
}

#[test]
fn vigie_reaches_orthanc_and_the_outside() {
    let s = setup();
    let v_nets = service_networks(s.service("vigie"));
    let o_nets: BTreeSet<_> = service_networks(s.service("orthanc")).into_iter().collect();
    let shared: Vec<_> = v_nets.iter().filter(|n| o_nets.contains(*n)).collect();
    let public: Vec<_> = v_nets.iter().filter(|n| !s.network_internal(n)).collect();
    assert!(
        !shared.is_empty() && !public.is_empty(),
        "docker/compose.yaml: services.vigie must share a network with orthanc (shared: \
         {shared:?}) and be on one network that is not internal, for its published ports \
         (public: {public:?})"
    );
}

#[test]
fn admin_listener_stays_on_loopback() {
    let s = setup();
    let admin = text(&s.vigie_yaml["listen"]["admin"]);
    assert!(
        admin.starts_with("127.0.0.1:") || admin.starts_with("[::1]:"),
        "docker/vigie.yaml: listen.admin is {admin:?}: set it to 127.0.0.1:PORT, so /readyz and \
         /metrics stay inside the container (the image's HEALTHCHECK `vigie health` asks it)"
    );
}

#[test]
fn secrets_are_files() {
    let s = setup();
    let secrets = s.compose["secrets"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let not_files: Vec<_> = secrets
        .iter()
        .filter(|(_, v)| {
            !v.as_object()
                .is_some_and(|m| m.len() == 1 && m.contains_key("file"))
        })
        .map(|(k, _)| k)
        .collect();
    assert!(
        !secrets.is_empty() && not_files.is_empty(),
        "docker/compose.yaml: every top-level secret must be `file: ./secrets/NAME` and nothing \
         else (no inline value, no environment); not so: {not_files:?}"
    );
}

#[test]
fn password_secret_is_declared_and_shared() {
    let s = setup();
    let declared = s.compose["secrets"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut undeclared = Vec::new();
    for (name, svc) in s.services() {
        for sec in svc["secrets"].as_array().into_iter().flatten() {
            let source = if sec.is_object() {
                text(&sec["source"])
            } else {
                text(sec)
            };
            if !declared.contains_key(&source) {
                undeclared.push(format!("{name}: {source}"));
            }
        }
    }
    assert!(
        undeclared.is_empty(),
        "docker/compose.yaml: services use secrets not declared under the top-level `secrets:`: \
         {undeclared:?}"
    );
    let (file, secret) = s.password_secret();
    let given = |svc: &str| {
        secret
            .as_ref()
            .is_some_and(|sec| strings(&s.service(svc)["secrets"]).contains(sec))
    };
    assert!(
        given("vigie") && given("orthanc"),
        "docker/vigie.yaml reads the Orthanc password from {file:?}: it must be \
         /run/secrets/NAME with NAME a compose secret given to both services.vigie and \
         services.orthanc (`secrets: [NAME]`)"
    );
}

#[test]
fn no_secret_in_environment() {
    let s = setup();
    let looks_secret = ["PASSWORD", "PASSWD", "REGISTERED_USERS", "TOKEN", "KEY"];
    let inline: Vec<_> = s
        .services()
        .flat_map(|(name, svc)| {
            environment(svc)
                .into_keys()
                .filter(|k| looks_secret.iter().any(|w| k.contains(w)) && !k.ends_with("_SECRET"))
                .map(move |k| format!("{name}.{k}"))
        })
        .collect();
    assert!(
        inline.is_empty(),
        "docker/compose.yaml: secret-looking environment variables with inline values: \
         {inline:?}; put the value in a secret file and use the image's *_SECRET variable"
    );
}

#[test]
fn orthanc_user_is_the_one_vigie_sends() {
    let s = setup();
    let env = environment(s.service("orthanc"));
    const PREFIX: &str = "ORTHANC__REGISTERED_USERS__";
    let users: Vec<(&str, &String)> = env
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.strip_suffix("_SECRET")?, v)))
        .collect();
    // Orthanc's image turns ORTHANC__REGISTERED_USERS__VIGIE_SECRET into RegisteredUsers.Vigie.
    let camel = |u: &str| -> String {
        u.split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_string() + &c.as_str().to_ascii_lowercase())
                    .unwrap_or_default()
            })
            .collect()
    };
    let names: Vec<String> = users.iter().map(|(u, _)| camel(u)).collect();
    let sent = text(&s.vigie_yaml["upstream"]["credentials"]["username"]);
    let (_, secret) = s.password_secret();
    assert!(
        names == [sent.clone()] && Some(users[0].1) == secret.as_ref(),
        "docker/compose.yaml: orthanc's registered users are {names:?} (from {PREFIX}*_SECRET); \
         there must be exactly one, {sent:?} (docker/vigie.yaml upstream.credentials.username), \
         whose _SECRET names the secret docker/vigie.yaml reads ({secret:?})"
    );
}

#[test]
fn orthanc_settings() {
    let s = setup();
    let env = environment(s.service("orthanc"));
    for (key, want) in [
        ("ORTHANC__AUTHENTICATION_ENABLED", "true"),
        ("ORTHANC__REMOTE_ACCESS_ALLOWED", "true"),
        ("ORTHANC__EXECUTE_LUA_ENABLED", "false"),
        ("DICOM_WEB_PLUGIN_ENABLED", "true"),
    ] {
        let got = env.get(key).map(|v| v.to_ascii_lowercase());
        assert_eq!(
            got.as_deref(),
            Some(want),
            "docker/compose.yaml: services.orthanc.environment.{key} must be \"{want}\" \
             (authentication on, remote access inside the network, Lua off, DICOMweb on)"
        );
    }
}

#[test]
fn orthanc_image_is_pinned() {
    let s = setup();
    let image = text(&s.service("orthanc")["image"]);
    let tag = image.strip_prefix("orthancteam/orthanc:").unwrap_or("");
    let parts: Vec<&str> = tag.split('.').collect();
    let pinned = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        pinned,
        "docker/compose.yaml: services.orthanc.image is {image:?}: pin a release, \
         orthancteam/orthanc:MAJOR.MINOR.PATCH (docs/deploy.md, \"Updating\")"
    );
}

#[test]
fn policy_is_the_orthanc_preset() {
    let s = setup();
    let rules = s.vigie_yaml["access"].as_array().map_or(0, Vec::len);
    assert!(rules > 0, "docker/vigie.yaml has no access: rules");
    assert!(
        s.vigie_yaml["access"] == s.preset["access"],
        "docker/vigie.yaml's access rules differ from config/orthanc.example.yaml's: copy the \
         preset's access: section over"
    );
}

#[test]
fn vigie_image_services_are_hardened() {
    let s = setup();
    let mut checked = 0;
    for (name, svc) in s.services() {
        if text(&svc["image"]) != "vigie" && svc["build"].is_null() {
            continue;
        }
        checked += 1;
        let ok = svc["read_only"] == Value::Bool(true)
            && strings(&svc["cap_drop"]).iter().any(|c| c == "ALL")
            && strings(&svc["security_opt"])
                .iter()
                .any(|o| o == "no-new-privileges:true")
            && matches!(svc["privileged"], Value::Null | Value::Bool(false))
            && svc["cap_add"].is_null()
            && svc["user"].is_null();
        assert!(
            ok,
            "docker/compose.yaml: services.{name} runs the vigie image and must have \
             `read_only: true`, `cap_drop: [ALL]`, `security_opt: [no-new-privileges:true]`, no \
             privileged, no cap_add and no user (the image's 65532); it has read_only={} \
             cap_drop={} security_opt={} privileged={} cap_add={} user={}",
            svc["read_only"],
            svc["cap_drop"],
            svc["security_opt"],
            svc["privileged"],
            svc["cap_add"],
            svc["user"]
        );
    }
    assert!(
        checked >= 1,
        "docker/compose.yaml: no service runs the vigie image (image: vigie or build:)"
    );
}

#[test]
fn no_service_is_privileged() {
    let s = setup();
    let privileged: Vec<_> = s
        .services()
        .filter(|(_, svc)| svc["privileged"] == Value::Bool(true))
        .map(|(n, _)| n)
        .collect();
    assert!(
        privileged.is_empty(),
        "docker/compose.yaml: remove `privileged: true` from {privileged:?}"
    );
}

#[test]
fn vigie_mounts_configuration_read_only_and_state_on_a_volume() {
    let s = setup();
    let vm = mounts(s.service("vigie"));
    for target in [
        "/etc/vigie/vigie.yaml",
        "/etc/vigie/certs",
        "/etc/vigie/users",
    ] {
        assert!(
            vm.get(target).is_some_and(|(_, ro)| *ro),
            "docker/compose.yaml: services.vigie must mount {target} read-only (`:ro`); mounts: \
             {vm:?}"
        );
    }
    let state_dir = text(&s.vigie_yaml["state_dir"]);
    let state = vm.get(&state_dir);
    let named = state.is_some_and(|(src, ro)| {
        !ro && s.compose["volumes"]
            .as_object()
            .is_some_and(|v| v.contains_key(src))
    });
    assert!(
        named,
        "docker/compose.yaml: services.vigie must mount docker/vigie.yaml's state_dir \
         ({state_dir:?}) read-write on a named volume declared under top-level `volumes:`; \
         it has {state:?}"
    );
}

#[test]
fn every_path_of_vigie_yaml_is_mounted() {
    let s = setup();
    let vigie = s.service("vigie");
    let vm = mounts(vigie);
    let secrets = strings(&vigie["secrets"]);
    let c = &s.vigie_yaml;
    let paths = [
        ("tls.cert_file", text(&c["tls"]["cert_file"])),
        ("tls.key_file", text(&c["tls"]["key_file"])),
        ("auth.users_file", text(&c["auth"]["users_file"])),
        ("state_dir", text(&c["state_dir"])),
        ("audit.dir", s.effective_audit_dir()),
        ("upstream.credentials.password_file", s.password_secret().0),
    ];
    let covered = |p: &str| match p.strip_prefix("/run/secrets/") {
        Some(name) => secrets.iter().any(|s| s == name),
        None => {
            !p.is_empty()
                && vm.keys().any(|t| {
                    p == t
                        || p.strip_prefix(t.trim_end_matches('/'))
                            .is_some_and(|rest| rest.starts_with('/'))
                })
        }
    };
    let uncovered: Vec<_> = paths.iter().filter(|(_, p)| !covered(p)).collect();
    assert!(
        uncovered.is_empty(),
        "docker/vigie.yaml uses paths no mount or secret of services.vigie provides: \
         {uncovered:?}; add the mount in docker/compose.yaml or change the path"
    );
}

#[test]
fn dockerfile_stages() {
    let s = setup();
    let froms = s.all("FROM");
    let rust_version = s
        .cargo_toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|l| l.split('"').nth(1))
        .and_then(major_minor)
        .expect("Cargo.toml has no rust-version = \"X.Y\"");
    let build = froms
        .first()
        .and_then(|f| f.strip_prefix("rust:"))
        .and_then(|f| {
            let end = f.find(|c: char| !c.is_ascii_digit() && c != '.')?;
            major_minor(&f[..end])
        });
    assert!(
        froms.len() >= 2 && build.is_some_and(|b| b >= rust_version),
        "docker/Dockerfile: the build stage must be FROM rust:X.Y with X.Y at least Cargo.toml's \
         rust-version {rust_version:?}, followed by a runtime stage; FROM lines: {froms:?}"
    );
    assert!(
        froms
            .last()
            .is_some_and(|f| f.starts_with("gcr.io/distroless/cc-debian12:nonroot")),
        "docker/Dockerfile: the runtime stage must be FROM gcr.io/distroless/cc-debian12:nonroot \
         (no shell, no package manager); it is {:?}",
        froms.last()
    );
    assert!(
        s.all("RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "docker/Dockerfile: build with `cargo build --release --locked` (the committed Cargo.lock)"
    );
}

#[test]
fn dockerfile_user() {
    let s = setup();
    let user = s.last("USER");
    assert!(
        ["65532", "65532:65532", "nonroot", "nonroot:nonroot"].contains(&user),
        "docker/Dockerfile: the last USER is {user:?}: set `USER 65532:65532` (distroless's \
         nonroot; docs/deploy.md's file owners assume it)"
    );
}

#[test]
fn dockerfile_entrypoint_and_cmd() {
    let s = setup();
    let ep = s.last("ENTRYPOINT");
    assert_eq!(
        json_list(ep),
        Some(vec!["/usr/local/bin/vigie".to_string()]),
        "docker/Dockerfile: ENTRYPOINT must be [\"/usr/local/bin/vigie\"] (exec form)"
    );
    assert!(
        s.all("COPY").iter().any(|a| {
            a.contains("--from=") && a.split_whitespace().last() == Some("/usr/local/bin/vigie")
        }),
        "docker/Dockerfile: COPY --from=build the binary to /usr/local/bin/vigie"
    );
    let cmd = json_list(s.last("CMD")).unwrap_or_default();
    assert!(
        cmd.starts_with(&[
            "serve".into(),
            "--config".into(),
            "/etc/vigie/vigie.yaml".into()
        ]),
        "docker/Dockerfile: CMD must start with [\"serve\", \"--config\", \
         \"/etc/vigie/vigie.yaml\"]; it is {cmd:?}"
    );
}

#[test]
fn dockerfile_healthcheck() {
    let s = setup();
    let hc = s.last("HEALTHCHECK");
    let cmd = hc.split_once("CMD").map_or("", |(_, c)| c.trim());
    assert_eq!(
        json_list(cmd),
        Some(
            [
                "/usr/local/bin/vigie",
                "health",
                "--config",
                "/etc/vigie/vigie.yaml"
            ]
            .map(String::from)
            .to_vec()
        ),
        "docker/Dockerfile: HEALTHCHECK must run CMD [\"/usr/local/bin/vigie\", \"health\", \
         \"--config\", \"/etc/vigie/vigie.yaml\"] in exec form (there is no shell in the image); \
         it is {hc:?}"
    );
}

#[test]
fn dockerfile_runtime() {
    let s = setup();
    assert_eq!(
        s.last("STOPSIGNAL"),
        "SIGTERM",
        "docker/Dockerfile: STOPSIGNAL SIGTERM (the gateway drains on it, then exits 0)"
    );
    let exposed: BTreeSet<String> = s
        .all("EXPOSE")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .map(String::from)
        .collect();
    let targets: BTreeSet<String> = s.vigie_published().into_values().collect();
    let want: BTreeSet<String> = ["8443", "8080"].map(String::from).into();
    assert!(
        exposed == want && targets == want,
        "docker/Dockerfile: EXPOSE 8443 8080, the container ports compose publishes onto; EXPOSE \
         has {exposed:?}, docker/compose.yaml's vigie targets are {targets:?}"
    );
    assert!(
        s.copied_for_image_user("/var/lib/vigie") && s.volumes().contains("/var/lib/vigie"),
        "docker/Dockerfile: create /var/lib/vigie owned by 65532 (COPY --chown=65532:65532 ... \
         /var/lib/vigie) and declare it VOLUME, so a fresh named volume is writable by the \
         gateway; VOLUME declares {:?}",
        s.volumes()
    );
}

#[test]
fn audit_trail_is_apart_from_the_state() {
    let s = setup();
    let dir = s.audit_dir();
    let state_dir = text(&s.vigie_yaml["state_dir"]);
    let inside = |a: &str, b: &str| {
        a.strip_prefix(b.trim_end_matches('/'))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    assert!(
        dir.starts_with('/') && !inside(&dir, &state_dir) && !inside(&state_dir, &dir),
        "docker/vigie.yaml: audit.dir is {dir:?}: set `audit:` `dir: /var/lib/vigie-audit`, a \
         directory of its own outside state_dir ({state_dir:?}) and mounted from the vigie-audit \
         volume, so the trail is kept apart from the state that holds its sealing key"
    );
}

#[test]
fn audit_volume_is_mounted_in_vigie_and_admin() {
    let s = setup();
    let dir = s.effective_audit_dir();
    let state_dir = text(&s.vigie_yaml["state_dir"]);
    let mut sources = Vec::new();
    for name in ["vigie", "vigie-admin"] {
        let svc = &s.compose["services"][name];
        assert!(
            svc.is_object(),
            "docker/compose.yaml: services.{name} is missing; the gateway and its admin commands \
             both write the audit trail"
        );
        let vm = mounts(svc);
        let audit = vm.get(&dir);
        let state = vm.get(&state_dir).map(|(src, _)| src);
        let wrong = match audit {
            None => Some("nothing is mounted there".to_string()),
            Some((_, true)) => Some("it is mounted read-only".to_string()),
            Some((src, _)) if !s.declared_volume(src) => Some(format!(
                "{src:?} is not a named volume declared under the top-level `volumes:`"
            )),
            Some((src, _)) if Some(src) == state => Some(format!(
                "{src:?} is the state volume, which holds the sealing key"
            )),
            Some(_) => None,
        };
        assert!(
            wrong.is_none(),
            "docker/compose.yaml: services.{name} must mount docker/vigie.yaml's audit.dir \
             ({dir:?}) read-write from a named volume of its own declared under the top-level \
             `volumes:` (`- vigie-audit:{dir}` and `vigie-audit: {{}}`); {}",
            wrong.unwrap_or_default()
        );
        sources.push((name, audit.map(|(src, _)| src.clone()), state.cloned()));
    }
    assert!(
        sources[0].1 == sources[1].1 && sources[0].2 == sources[1].2,
        "docker/compose.yaml: services.vigie-admin must mount the same audit and state volumes as \
         services.vigie (its records join the same trail, sealed with the same key); (service, \
         audit volume, state volume): {sources:?}"
    );
}

#[test]
fn only_vigie_mounts_the_audit_volume() {
    let s = setup();
    let dir = s.effective_audit_dir();
    let audit_volume = mounts(s.service("vigie"))
        .get(&dir)
        .map(|(src, _)| src.clone())
        .unwrap_or_default();
    assert!(
        !audit_volume.is_empty(),
        "docker/compose.yaml: services.vigie mounts no volume at docker/vigie.yaml's audit.dir \
         ({dir:?}): add `- vigie-audit:{dir}` to its volumes"
    );
    let others: Vec<_> = s
        .services()
        .filter(|(_, svc)| text(&svc["image"]) != "vigie" && svc["build"].is_null())
        .filter(|(_, svc)| mounts(svc).values().any(|(src, _)| *src == audit_volume))
        .map(|(n, _)| n)
        .collect();
    assert!(
        others.is_empty(),
        "docker/compose.yaml: the audit volume ({audit_volume:?}) is evidence, kept apart from \
         the viewer's data: mount it only in the services that run the vigie image, not in \
         {others:?}"
    );
}

#[test]
fn dockerfile_creates_the_audit_directory() {
    let s = setup();
    let dir = s.effective_audit_dir();
    assert!(
        s.copied_for_image_user(&dir) && s.volumes().contains(&dir),
        "docker/Dockerfile: create docker/vigie.yaml's audit.dir ({dir:?}) owned by 65532 \
         (COPY --chown=65532:65532 /image{dir} {dir}) and declare it VOLUME, so a fresh \
         vigie-audit volume is writable by the gateway; VOLUME declares {:?}",
        s.volumes()
    );
}

#[test]
fn build_context_is_limited() {
    let s = setup();
    let rest: BTreeSet<&str> = s.dockerignore.iter().skip(1).map(String::as_str).collect();
    assert!(
        s.dockerignore.first().map(String::as_str) == Some("*")
            && rest == BTreeSet::from(["!Cargo.toml", "!Cargo.lock", "!src/", "!templates/"]),
        ".dockerignore must be `*` then only !Cargo.toml, !Cargo.lock, !src/, !templates/ (no \
         certificates, state, secrets or users in the build context); it is {:?}",
        s.dockerignore
    );
}
