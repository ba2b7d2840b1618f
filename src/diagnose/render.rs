//! The report as text for a terminal, most serious first, with a summary line.

use std::fmt::Write as _;

use super::{Finding, Level};
use crate::lang::Lang;

/// The report as text, one finding per paragraph, most serious first.
pub(crate) fn render(findings: &[Finding], lang: Lang) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.level));
    let mut out = String::new();
    for f in sorted {
        let _ = writeln!(out, "[{:<9}] {}", f.level.label(lang), f.message);
        if !f.fix.is_empty() {
            let _ = writeln!(out, "            → {}", f.fix);
        }
    }
    let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
    let (c, h, w) = (
        count(Level::Critical),
        count(Level::High),
        count(Level::Warning),
    );
    let _ = match lang {
        Lang::Fr => writeln!(
            out,
            "\nBilan : {c} critique(s), {h} grave(s), {w} à surveiller.{}",
            if c + h == 0 {
                " Rien de grave n'a été trouvé."
            } else {
                " Corrigez d'abord les points critiques et graves."
            }
        ),
        Lang::En => writeln!(
            out,
            "\nSummary: {c} critical, {h} high, {w} warning(s).{}",
            if c + h == 0 {
                " Nothing serious was found."
            } else {
                " Fix the critical and high findings first."
            }
        ),
    };
    out
}
