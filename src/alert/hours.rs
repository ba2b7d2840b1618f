//! Working hours in the practice's own time zone (`alerts.off_hours`): whether a moment falls
//! outside them. The zone is an IANA name resolved by `jiff` from the system's tz database, so
//! summer time moves with the law, not with a fixed offset.

use time::OffsetDateTime;

use crate::config::WorkingHours;

/// The local time (`2026-03-14 23:12 Europe/Paris`) when `at` is outside the working hours.
pub(crate) fn outside(h: &WorkingHours, at: OffsetDateTime) -> Option<String> {
    let ts = jiff::Timestamp::from_second(at.unix_timestamp()).ok()?;
    let local = ts.to_zoned_datetime(h.zone.clone());
    let day = usize::from(local.weekday().to_monday_zero_offset().unsigned_abs());
    let minute =
        u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
    let in_span = if h.start < h.end {
        minute >= h.start && minute < h.end
    } else {
        // A span across midnight (22:00-06:00).
        minute >= h.start || minute < h.end
    };
    let working = h.days.get(day).copied().unwrap_or(false) && in_span;
    (!working).then(|| format!("{} {}", local.strftime("%Y-%m-%d %H:%M"), h.time_zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> WorkingHours {
        WorkingHours {
            start: 7 * 60,
            end: 20 * 60,
            days: [true, true, true, true, true, true, false],
            time_zone: "Europe/Paris".into(),
            zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap(),
        }
    }

    fn utc(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn the_zone_and_its_summer_time_decide() {
        let h = paris();
        // Wednesday 2026-01-14: 06:30 UTC is 07:30 in Paris (winter, UTC+1).
        assert_eq!(outside(&h, utc("2026-01-14T06:30:00Z")), None);
        // 05:30 UTC is 06:30 in Paris: before opening.
        assert_eq!(
            outside(&h, utc("2026-01-14T05:30:00Z")).as_deref(),
            Some("2026-01-14 06:30 Europe/Paris")
        );
        // Summer (UTC+2): 18:30 UTC is 20:30 in Paris, closed; in winter it would be 19:30.
        assert!(outside(&h, utc("2026-07-15T18:30:00Z")).is_some());
        assert_eq!(outside(&h, utc("2026-01-14T18:30:00Z")), None);
        // Sunday 2026-01-18 at noon: not a working day.
        assert!(outside(&h, utc("2026-01-18T11:00:00Z")).is_some());
    }

    #[test]
    fn a_span_across_midnight() {
        let mut h = paris();
        (h.start, h.end) = (22 * 60, 6 * 60);
        h.days = [true; 7];
        // 23:00 and 05:00 Paris are inside; noon is outside.
        assert_eq!(outside(&h, utc("2026-01-14T22:00:00Z")), None);
        assert_eq!(outside(&h, utc("2026-01-14T04:00:00Z")), None);
        assert!(outside(&h, utc("2026-01-14T11:00:00Z")).is_some());
    }
}
