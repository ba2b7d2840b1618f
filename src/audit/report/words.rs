//! The reports' words in French and English, and how they write times: `2026-03-01 10:05:00`
//! in tables (UTC, said once at the top), `1 March 2026` / `1er mars 2026` in sentences.

use time::{Duration, OffsetDateTime, UtcOffset};

use crate::lang::Lang;

/// `2026-03-01 10:05:00` (UTC).
pub(crate) fn stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A trail time (RFC 3339) as [`stamp`] writes it; as given when it does not parse.
pub(super) fn stamp_text(rfc3339: &str) -> String {
    super::trail::instant(rfc3339).map_or_else(|| rfc3339.to_string(), stamp)
}

/// `1 March 2026`, `1er mars 2026`.
pub(super) fn day(t: OffsetDateTime, lang: Lang) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let m = usize::from(u8::from(t.month())) - 1;
    const FR: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    match lang {
        Lang::Fr if t.day() == 1 => format!("1er {} {}", FR[m], t.year()),
        Lang::Fr => format!("{} {} {}", t.day(), FR[m], t.year()),
        Lang::En => format!("{} {} {}", t.day(), EN[m], t.year()),
    }
}

/// A DICOM date (`YYYYMMDD`) as `YYYY-MM-DD`; anything else as stored.
pub(super) fn dicom_date(d: &str) -> String {
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_string()
    }
}

/// What an operation did, as a past participle: `viewed`, `consulté`.
pub(super) fn operation(op: &str, lang: Lang) -> String {
    let (fr, en) = match op {
        "view" => ("consulté", "viewed"),
        "download" => ("téléchargé", "downloaded"),
        "search" => ("recherché", "searched"),
        "upload" => ("déposé", "uploaded"),
        "modify" => ("modifié", "modified"),
        "delete" => ("supprimé", "deleted"),
        "export" => ("envoyé", "sent"),
        other => return other.to_string(),
    };
    lang.pick_text(fr, en).to_string()
}

/// `51 h 05 min`, of a non-negative duration: in hours, the deadline's own unit.
pub(super) fn span(d: Duration) -> String {
    let minutes = d.whole_minutes().max(0);
    format!("{} h {:02} min", minutes / 60, minutes % 60)
}

/// `1 person`, `3 personnes`.
pub(super) fn count(n: usize, lang: Lang, fr: (&str, &str), en: (&str, &str)) -> String {
    let (one, many) = lang.pick_text(fr, en);
    // French counts zero in the singular: « 0 personne ».
    let singular = n == 1 || (n == 0 && lang == Lang::Fr);
    format!("{n} {}", if singular { one } else { many })
}

/// A value from the trail made safe for a terminal: control characters (an escape sequence in a
/// patient name written by a modality, say) become `?`.
pub(super) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The first 8 characters of a session id: enough to tell sessions apart in a report, not the
/// id itself.
pub(super) fn session_ref(session: &str) -> String {
    session.chars().take(8).collect()
}

/// An operation as a noun, for sentences: `viewing`, `consultation`.
pub(super) fn operation_noun(op: &str, lang: Lang) -> String {
    let (fr, en) = match op {
        "view" => ("consultation", "viewing"),
        "download" => ("téléchargement", "download"),
        "search" => ("recherche", "search"),
        "upload" => ("dépôt", "upload"),
        "modify" => ("modification", "change"),
        "delete" => ("suppression", "deletion"),
        "export" => ("envoi", "sending"),
        other => return other.to_string(),
    };
    lang.pick_text(fr, en).to_string()
}
