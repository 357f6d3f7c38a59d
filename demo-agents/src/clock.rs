//! RFC 3339 / ISO 8601 UTC timestamps with millisecond precision, as A2A v1.0 asks for
//! (`2024-03-15T10:15:00.000Z`).

use std::num::NonZeroU8;
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;
use time::format_description::well_known::iso8601::{Config, EncodedConfig, TimePrecision};

/// Exactly three fractional digits and a `Z`: `Rfc3339` would drop the zeros at the end of the
/// fraction, and the fraction itself on a whole second.
const A2A_TIME: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: NonZeroU8::new(3),
    })
    .encode();

/// Formats `t`, truncated to the millisecond. A time before 1970 shows as 1970, and one past
/// the format's last year (9999) as its last millisecond.
pub fn iso8601(t: SystemTime) -> String {
    const LAST_MS: u128 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .min(LAST_MS);
    let nanos = i128::try_from(ms).expect("clamped above") * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Iso8601::<A2A_TIME>).ok())
        .expect("a time in years 1970 to 9999 formats with a four-digit year")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_710_497_700_123);
        assert_eq!(iso8601(t), "2024-03-15T10:15:00.123Z");
        // Leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso8601(t), "2000-02-29T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(iso8601(t), "2099-12-31T23:59:59.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_710_497_700_100);
        assert_eq!(iso8601(t), "2024-03-15T10:15:00.100Z");
    }
}
