//! Reading the query string for the parser: Orthanc's `_method` (without allocating, as it is
//! looked for on every request) and the search criteria of a QIDO query.

use super::{Verb, severity};

/// Longest criterion value kept in a `Target::Query`.
pub(super) const MAX_VALUE: usize = 256;

/// DICOM keywords and tags of the search criteria that name a patient or a study.
pub(super) const CRITERIA: &[(&str, &str)] = &[
    ("PatientID", "00100020"),
    ("PatientName", "00100010"),
    ("PatientBirthDate", "00100030"),
    ("OtherPatientIDs", "00101000"),
    ("StudyInstanceUID", "0020000D"),
    ("AccessionNumber", "00080050"),
    ("StudyDate", "00080020"),
    ("StudyID", "00200010"),
    ("StudyDescription", "00081030"),
    ("SeriesInstanceUID", "0020000E"),
    ("SOPInstanceUID", "00080018"),
];

/// The search criteria of a QIDO query that name a patient or a study.
pub(super) fn criteria(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else {
        return Vec::new();
    };
    form_urlencoded::parse(q.as_bytes())
        .filter_map(|(k, v)| {
            let k = k.trim();
            let (keyword, _) = CRITERIA
                .iter()
                .find(|(word, tag)| k.eq_ignore_ascii_case(word) || k.eq_ignore_ascii_case(tag))?;
            Some(((*keyword).to_owned(), cut(&v, MAX_VALUE).to_owned()))
        })
        .collect()
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The method named by a `_method` query parameter (Orthanc's method faking), read without
/// allocating; an unknown name counts as DELETE, the most serious. The most serious wins when
/// there are several.
pub(super) fn faked_verb(query: &str) -> Option<Verb> {
    let b = query.as_bytes();
    // Cheap test first, as the guard's: most queries have neither an escape nor the word.
    if memchr::memchr(b'%', b).is_none()
        && !b.windows(7).any(|w| w.eq_ignore_ascii_case(b"_method"))
    {
        return None;
    }
    let mut found: Option<Verb> = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !decoded_is(k, b"_method") {
            continue;
        }
        let verb = [
            ("GET", Verb::Read),
            ("HEAD", Verb::Read),
            ("POST", Verb::Post),
            ("PUT", Verb::Put),
            ("PATCH", Verb::Put),
        ]
        .into_iter()
        .find(|(name, _)| decoded_is(v, name.as_bytes()))
        .map_or(Verb::Delete, |(_, verb)| verb);
        let rank = |v: Verb| severity(v.default_op());
        found = match found {
            Some(f) if rank(f) >= rank(verb) => Some(f),
            _ => Some(verb),
        };
    }
    found
}

/// Whether `raw`, form-decoded (`+` is a space, `%XX` a byte) and trimmed of ASCII white space,
/// equals `want` ignoring ASCII case.
fn decoded_is(raw: &str, want: &[u8]) -> bool {
    let mut bytes = Decoded {
        raw: raw.as_bytes(),
    }
    .skip_while(u8::is_ascii_whitespace);
    for w in want {
        match bytes.next() {
            Some(b) if b.eq_ignore_ascii_case(w) => {}
            _ => return false,
        }
    }
    bytes.all(|b| b.is_ascii_whitespace())
}

/// The bytes of a form-encoded string, decoded on the fly (a malformed escape is kept as is).
struct Decoded<'a> {
    raw: &'a [u8],
}

impl Iterator for Decoded<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.raw.split_first()?;
        self.raw = rest;
        match b {
            b'+' => Some(b' '),
            b'%' => {
                let hex = |c: &u8| (*c as char).to_digit(16);
                match rest {
                    [h, l, tail @ ..] => match (hex(h), hex(l)) {
                        (Some(h), Some(l)) => {
                            self.raw = tail;
                            u8::try_from(h * 16 + l).ok()
                        }
                        _ => Some(b'%'),
                    },
                    _ => Some(b'%'),
                }
            }
            _ => Some(b),
        }
    }
}
