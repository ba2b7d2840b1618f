//! The two languages Vigie speaks (French, its home, and English) and how one is chosen: from a
//! browser's `?lang=` and `Accept-Language` for the pages, from the locale for the command line.
//! Every bilingual text goes through [`Lang::pick_text`] (or a `match` on [`Lang`]).

/// A language of the pages, the reports and the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Fr,
    En,
}

impl Lang {
    /// `?lang=` first, then the first of French or English in `Accept-Language` order;
    /// French when nothing says otherwise (the product's home).
    pub(crate) fn negotiate(query_lang: Option<&str>, accept_language: Option<&str>) -> Lang {
        match query_lang {
            Some("en") => return Lang::En,
            Some("fr") => return Lang::Fr,
            _ => {}
        }
        let mut best: Option<(f32, Lang)> = None;
        for item in accept_language.unwrap_or("").split(',') {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "fr" || tag.starts_with("fr-") {
                Lang::Fr
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Fr, |(_, l)| l)
    }

    /// French when the locale (`LC_ALL`, `LC_MESSAGES`, `LANG`, first one set) says so, else
    /// English: the command line's default.
    pub(crate) fn from_env() -> Lang {
        for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                return if v.to_ascii_lowercase().starts_with("fr") {
                    Lang::Fr
                } else {
                    Lang::En
                };
            }
        }
        Lang::En
    }

    /// The language's code, for `<html lang>` and `?lang=`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The other language (the page's language switch).
    pub(crate) fn other(self) -> Lang {
        self.pick_text(Lang::En, Lang::Fr)
    }

    /// One of a text's two versions.
    pub(crate) fn pick_text<T>(self, fr: T, en: T) -> T {
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_query_then_accept_language_then_french() {
        assert_eq!(
            Lang::negotiate(None, Some("en-GB,en;q=0.9,fr;q=0.8")),
            Lang::En
        );
        assert_eq!(
            Lang::negotiate(None, Some("de-DE,fr;q=0.5,en;q=0.4")),
            Lang::Fr
        );
        assert_eq!(Lang::negotiate(None, Some("de")), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("en"), Some("fr")), Lang::En);
        assert_eq!(Lang::negotiate(None, None), Lang::Fr);
    }

    #[test]
    fn pick_text_and_code() {
        assert_eq!(Lang::Fr.pick_text("oui", "yes"), "oui");
        assert_eq!(Lang::En.pick_text("oui", "yes"), "yes");
        assert_eq!(Lang::En.code(), "en");
        assert_eq!((Lang::Fr.other(), Lang::En.other()), (Lang::En, Lang::Fr));
    }
}
