//! Who the data a URL names belongs to: Orthanc's identifiers and DICOM UIDs resolved to a
//! patient (PatientID, name) and a study (StudyInstanceUID, date, description), by asking the
//! upstream itself with the gateway's credentials, off the request path, and remembered.
//!
//! - Orthanc: `GET /instances/{id}` names its series, `GET /series/{id}` its study,
//!   `GET /studies/{id}` the study's tags and its patient's, `GET /patients/{id}` the patient's.
//!   An instance costs one question the first time, its series and study one more each the
//!   first time they are met: a study of 500 images asks 502 questions once.
//! - DICOMweb (any server): `GET {root}/studies?StudyInstanceUID={uid}` (QIDO-RS) with the
//!   patient's and study's attributes as `includefield`; for WADO-URI naming only the
//!   instance, `GET {root}/instances?SOPInstanceUID={uid}` first. WADO-URI at the server's
//!   root (`/wado`, Orthanc's) is resolved through `/dicom-web`, Orthanc's DICOMweb root.
//!
//! Answers are kept (bounded: the cache is emptied when it reaches [`MAX_CACHED`]); a failure is
//! kept for [`RETRY_AFTER`] so that a viewer's hundred requests do not ask a hundred times.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Target;
use crate::audit::event::{Patient, Study, Unresolved};

/// Entries kept at most per kind of question.
const MAX_CACHED: usize = 100_000;
/// A failed resolution is tried again after this.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Largest answer read: Orthanc's are about 1 KiB, a QIDO answer for one study a few.
const MAX_ANSWER: usize = 256 * 1024;

/// Whom a request's data concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Subject {
    pub(crate) patient: Option<Patient>,
    pub(crate) study: Option<Study>,
}

/// Asks the upstream and remembers; cheap to clone (shared cache).
#[derive(Clone)]
pub(crate) struct Resolver {
    upstream: Upstream,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

/// What the resolver asks with: a GET to the upstream with the gateway's credentials, the
/// body read up to `max` bytes, any status but 200 an error (`crate::proxy::Proxy` in the
/// gateway, a table of answers in unit tests).
pub(crate) trait Lookup: Send + Sync + 'static {
    fn get<'a>(
        &'a self,
        path: &'a str,
        accept: &'static str,
        max: usize,
    ) -> futures_util::future::BoxFuture<'a, Result<bytes::Bytes, String>>;
}

/// Where the questions go.
#[derive(Clone)]
struct Upstream(Arc<dyn Lookup>);

impl Upstream {
    async fn get(&self, path: &str, accept: &'static str) -> Result<bytes::Bytes, String> {
        self.0.get(path, accept, MAX_ANSWER).await
    }
}

#[cfg(test)]
impl Lookup for HashMap<String, String> {
    fn get<'a>(
        &'a self,
        path: &'a str,
        _accept: &'static str,
        _max: usize,
    ) -> futures_util::future::BoxFuture<'a, Result<bytes::Bytes, String>> {
        let answer = HashMap::get(self, path)
            .map(|s| bytes::Bytes::from(s.clone()))
            .ok_or_else(|| "the upstream answered 404".to_string());
        Box::pin(std::future::ready(answer))
    }
}

#[derive(Default)]
struct Cache {
    /// Orthanc instance → its series.
    parent_series: HashMap<String, String>,
    /// Orthanc series → its study.
    parent_study: HashMap<String, String>,
    /// Orthanc study or patient id, or a DICOM study UID → whom it concerns.
    subjects: HashMap<String, Subject>,
    failures: HashMap<String, (Instant, String)>,
}

fn remember<V>(map: &mut HashMap<String, V>, key: String, value: V) {
    if map.len() >= MAX_CACHED {
        map.clear();
    }
    map.insert(key, value);
}

impl Resolver {
    pub(crate) fn new(upstream: impl Lookup) -> Resolver {
        Resolver {
            upstream: Upstream(Arc::new(upstream)),
            cache: Arc::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn with_answers(answers: HashMap<String, String>) -> Resolver {
        Resolver::new(answers)
    }

    /// Whom `target` concerns, from the cache when known. `None` for a target that names no
    /// one (a search, an upload).
    pub(crate) fn cached(&self, target: &Target) -> Option<Result<Subject, Unresolved>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if !cache.failures.is_empty() {
            let key = key(target)?;
            if let Some((when, why)) = cache.failures.get(&key)
                && when.elapsed() < RETRY_AFTER
            {
                return Some(Err(Unresolved {
                    resource: key,
                    why: why.clone(),
                }));
            }
        }
        let subject = match target {
            Target::OrthancInstance(id) => cache
                .parent_series
                .get(id)
                .and_then(|s| cache.parent_study.get(s))
                .and_then(|st| cache.subjects.get(st)),
            Target::OrthancSeries(id) => cache
                .parent_study
                .get(id)
                .and_then(|st| cache.subjects.get(st)),
            Target::OrthancStudy(id) | Target::OrthancPatient(id) => cache.subjects.get(id),
            Target::Dicom {
                study, instance, ..
            } => match (study.as_str(), instance) {
                ("", Some(i)) => cache.subjects.get(i),
                (s, _) => cache.subjects.get(s),
            },
            Target::Query(_) | Target::Unnamed => None,
        };
        subject.cloned().map(Ok)
    }

    /// Asks the upstream whom `target` concerns (what is already known is not asked again).
    /// `None` for a target that names no one.
    pub(crate) async fn resolve(&self, target: &Target) -> Option<Result<Subject, Unresolved>> {
        if let Some(known) = self.cached(target) {
            return Some(known);
        }
        let key = key(target)?;
        let result = self.ask(target).await;
        if let Err(why) = &result {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            remember(
                &mut cache.failures,
                key.clone(),
                (Instant::now(), why.clone()),
            );
        }
        Some(result.map_err(|why| Unresolved { resource: key, why }))
    }

    async fn ask(&self, target: &Target) -> Result<Subject, String> {
        match target {
            Target::OrthancInstance(id) => {
                let series = self.parent(id, Level::Instance).await?;
                let study = self.parent(&series, Level::Series).await?;
                self.orthanc_study(&study).await
            }
            Target::OrthancSeries(id) => {
                let study = self.parent(id, Level::Series).await?;
                self.orthanc_study(&study).await
            }
            Target::OrthancStudy(id) => self.orthanc_study(id).await,
            Target::OrthancPatient(id) => self.orthanc_patient(id).await,
            Target::Dicom {
                root,
                study,
                instance,
                ..
            } => {
                // WADO-URI sits at the server's root; Orthanc's DICOMweb (QIDO) at /dicom-web.
                let root = if root.is_empty() { "/dicom-web" } else { root };
                match (study.as_str(), instance) {
                    ("", Some(i)) => self.dicomweb_instance(root, i).await,
                    (s, _) => self.dicomweb_study(root, s).await,
                }
            }
            Target::Query(_) | Target::Unnamed => Err("names no patient".into()),
        }
    }

    /// The series of an instance, or the study of a series.
    async fn parent(&self, id: &str, level: Level) -> Result<String, String> {
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let map = match level {
                Level::Instance => &cache.parent_series,
                Level::Series => &cache.parent_study,
            };
            if let Some(p) = map.get(id) {
                return Ok(p.clone());
            }
        }
        check_orthanc_id(id)?;
        let (path, field) = match level {
            Level::Instance => (format!("/instances/{id}"), "ParentSeries"),
            Level::Series => (format!("/series/{id}"), "ParentStudy"),
        };
        let body = self.upstream.get(&path, "application/json").await?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the upstream's answer to {path} is not JSON"))?;
        let parent = doc
            .get(field)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the upstream's answer to {path} has no {field}"))?
            .to_string();
        check_orthanc_id(&parent)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let map = match level {
            Level::Instance => &mut cache.parent_series,
            Level::Series => &mut cache.parent_study,
        };
        remember(map, id.to_string(), parent.clone());
        Ok(parent)
    }

    async fn orthanc_study(&self, id: &str) -> Result<Subject, String> {
        if let Some(s) = self.known(id) {
            return Ok(s);
        }
        check_orthanc_id(id)?;
        let path = format!("/studies/{id}");
        let body = self.upstream.get(&path, "application/json").await?;
        let doc: OrthancResource = serde_json::from_slice(&body)
            .map_err(|_| format!("the upstream's answer to {path} is not an Orthanc study"))?;
        let patient_tags = doc.patient_main_dicom_tags.unwrap_or_default();
        let subject = Subject {
            patient: patient_tags.patient_id.map(|pid| Patient {
                id: pid,
                name: patient_tags.patient_name,
                upstream_id: doc.parent_patient,
            }),
            study: Some(Study {
                uid: doc
                    .main_dicom_tags
                    .study_instance_uid
                    .ok_or_else(|| format!("the upstream's answer to {path} has no study UID"))?,
                date: doc.main_dicom_tags.study_date,
                description: doc.main_dicom_tags.study_description,
                upstream_id: Some(id.to_string()),
            }),
        };
        self.keep(id, &subject);
        Ok(subject)
    }

    async fn orthanc_patient(&self, id: &str) -> Result<Subject, String> {
        if let Some(s) = self.known(id) {
            return Ok(s);
        }
        check_orthanc_id(id)?;
        let path = format!("/patients/{id}");
        let body = self.upstream.get(&path, "application/json").await?;
        let doc: OrthancResource = serde_json::from_slice(&body)
            .map_err(|_| format!("the upstream's answer to {path} is not an Orthanc patient"))?;
        let subject = Subject {
            patient: Some(Patient {
                id: doc
                    .main_dicom_tags
                    .patient_id
                    .ok_or_else(|| format!("the upstream's answer to {path} has no PatientID"))?,
                name: doc.main_dicom_tags.patient_name,
                upstream_id: Some(id.to_string()),
            }),
            study: None,
        };
        self.keep(id, &subject);
        Ok(subject)
    }

    /// WADO-URI naming only the instance: its study first (QIDO-RS at the instance level).
    async fn dicomweb_instance(&self, root: &str, uid: &str) -> Result<Subject, String> {
        if let Some(s) = self.known(uid) {
            return Ok(s);
        }
        check_dicomweb(root, uid)?;
        let path = format!("{root}/instances?SOPInstanceUID={uid}&includefield=0020000D");
        let body = self.upstream.get(&path, "application/dicom+json").await?;
        let doc: Vec<serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|_| "the upstream's QIDO answer is not DICOM JSON".to_string())?;
        let [instance] = doc.as_slice() else {
            return Err(format!(
                "the upstream's QIDO search for the instance found {} instances",
                doc.len()
            ));
        };
        let study = dicom_string(instance, "0020000D")
            .ok_or_else(|| "the upstream's QIDO answer names no study".to_string())?;
        let subject = self.dicomweb_study(root, &study).await?;
        self.keep(uid, &subject);
        Ok(subject)
    }

    async fn dicomweb_study(&self, root: &str, uid: &str) -> Result<Subject, String> {
        if let Some(s) = self.known(uid) {
            return Ok(s);
        }
        check_dicomweb(root, uid)?;
        let path = format!(
            "{root}/studies?StudyInstanceUID={uid}&includefield=00100020&includefield=00100010&includefield=00080020&includefield=00081030"
        );
        let body = self.upstream.get(&path, "application/dicom+json").await?;
        let doc: Vec<serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|_| "the upstream's QIDO answer is not DICOM JSON".to_string())?;
        let [study] = doc.as_slice() else {
            return Err(format!(
                "the upstream's QIDO search for the study found {} studies",
                doc.len()
            ));
        };
        let subject = Subject {
            patient: dicom_string(study, "00100020").map(|id| Patient {
                id,
                name: dicom_string(study, "00100010"),
                upstream_id: None,
            }),
            study: Some(Study {
                uid: uid.to_string(),
                date: dicom_string(study, "00080020"),
                description: dicom_string(study, "00081030"),
                upstream_id: None,
            }),
        };
        self.keep(uid, &subject);
        Ok(subject)
    }

    fn known(&self, key: &str) -> Option<Subject> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.subjects.get(key).cloned()
    }

    fn keep(&self, key: &str, subject: &Subject) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        remember(&mut cache.subjects, key.to_string(), subject.clone());
    }
}

#[derive(Clone, Copy)]
enum Level {
    Instance,
    Series,
}

/// The name a target is known by in the trail (and in the cache of failures).
pub(crate) fn key(target: &Target) -> Option<String> {
    Some(match target {
        Target::OrthancPatient(id) => format!("orthanc patient {id}"),
        Target::OrthancStudy(id) => format!("orthanc study {id}"),
        Target::OrthancSeries(id) => format!("orthanc series {id}"),
        Target::OrthancInstance(id) => format!("orthanc instance {id}"),
        Target::Dicom {
            study, instance, ..
        } => match (study.as_str(), instance) {
            ("", Some(i)) => format!("dicom instance {i}"),
            (s, _) => format!("dicom study {s}"),
        },
        Target::Query(_) | Target::Unnamed => return None,
    })
}

/// A DICOM UID, and a DICOMweb root the gateway may put in a URL it sends (the root comes from
/// the client's URL).
fn check_dicomweb(root: &str, uid: &str) -> Result<(), String> {
    if uid.is_empty() || uid.len() > 64 || !uid.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("not a DICOM UID".into());
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/-_.".contains(&b);
    if !root.starts_with('/') || root.contains("..") || !root.bytes().all(plain) {
        return Err("not a DICOMweb path the gateway asks".into());
    }
    Ok(())
}

/// Orthanc's identifiers are five groups of eight hex digits; anything else is not asked (it
/// goes into a URL the gateway builds).
fn check_orthanc_id(id: &str) -> Result<(), String> {
    let ok = id.len() == 44
        && id.split('-').count() == 5
        && id
            .split('-')
            .all(|g| g.len() == 8 && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err("not an Orthanc identifier".into())
    }
}

/// The first value of a DICOM JSON attribute as text (a person name's alphabetic form).
fn dicom_string(object: &serde_json::Value, tag: &str) -> Option<String> {
    let value = object.get(tag)?.get("Value")?.get(0)?;
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(pn) => pn.get("Alphabetic")?.as_str()?.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OrthancResource {
    #[serde(default)]
    main_dicom_tags: Tags,
    patient_main_dicom_tags: Option<Tags>,
    parent_patient: Option<String>,
}

#[derive(Default, Deserialize)]
struct Tags {
    #[serde(rename = "PatientID")]
    patient_id: Option<String>,
    #[serde(rename = "PatientName")]
    patient_name: Option<String>,
    #[serde(rename = "StudyInstanceUID")]
    study_instance_uid: Option<String>,
    #[serde(rename = "StudyDate")]
    study_date: Option<String>,
    #[serde(rename = "StudyDescription")]
    study_description: Option<String>,
}
