//! Wall-clock time for the access log: an exchange's start as the wall
//! clock read it, and RFC 3339 timestamps without a calendar dependency.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a thread uses one pair of clock readings to turn instants into
/// wall-clock times before it reads the clocks again.
const PAIR_LIFE: Duration = Duration::from_secs(1);

/// The wall-clock time of `at`, an instant of the monotonic clock.
///
/// Worked out from a pair of readings of both clocks that this thread took
/// at most [`PAIR_LIFE`] before `at`, so an exchange pays for one clock
/// read (its `Instant`) rather than two: on the virtual machines measured
/// a read costs some 30 ns (`docs/benchmarks.md`, fifteenth session).
/// Between two pairs the wall clock can drift from the monotonic
/// one only as fast as NTP slews it (at most 0.5 ms a second); a step of
/// the wall clock shows from the next pair on.
pub(crate) fn wall_time(at: Instant) -> SystemTime {
    PAIR.with(|pair| {
        let (base, wall) = match pair.get() {
            Some((base, wall)) if at.saturating_duration_since(base) < PAIR_LIFE => (base, wall),
            _ => {
                let fresh = (Instant::now(), SystemTime::now());
                pair.set(Some(fresh));
                fresh
            }
        };
        from_pair(at, base, wall)
    })
}

thread_local! {
    /// This thread's last readings of the two clocks, taken together.
    static PAIR: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
}

/// `at` on the wall clock, given that `base` was `wall` there.
fn from_pair(at: Instant, base: Instant, wall: SystemTime) -> SystemTime {
    match at.checked_duration_since(base) {
        Some(after) => wall + after,
        None => wall - base.duration_since(at),
    }
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
#[cfg(test)]
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let mut out = Vec::new();
    write_rfc3339_millis(&mut out, t);
    String::from_utf8(out).expect("ASCII")
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) to `out`.
pub(crate) fn write_rfc3339_millis(out: &mut Vec<u8>, t: SystemTime) {
    // Every line of a busy log falls in the same second as the line
    // before it: the calendar part is worked out once per second per
    // thread, and only the milliseconds are written each time.
    thread_local! {
        static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, prefix)| {
        if *cached != secs {
            prefix.clear();
            write_second(prefix, secs);
            *cached = secs;
        }
        out.extend_from_slice(prefix);
    });
    let ms = since.subsec_millis();
    push_digits(out, ms / 100, 1);
    push_digits(out, ms % 100, 2);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` of the second `secs` after the epoch.
fn write_second(out: &mut Vec<u8>, secs: u64) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    push_digits(out, u32::try_from(y.clamp(0, 9999)).unwrap_or(0), 4);
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
    out.push(b'T');
    push_digits(out, (rem / 3600) as u32, 2);
    out.push(b':');
    push_digits(out, ((rem % 3600) / 60) as u32, 2);
    out.push(b':');
    push_digits(out, (rem % 60) as u32, 2);
    out.push(b'.');
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut Vec<u8>, n: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = (n / 10u32.pow(i)) % 10;
        out.push(b'0' + digit as u8);
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// published algorithm, in 400-year eras).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How far apart two readings of the wall clock, one direct and one
    /// worked out, may be here: the time between them, on a busy machine.
    const CLOSE: Duration = Duration::from_millis(50);

    fn apart(a: SystemTime, b: SystemTime) -> Duration {
        a.duration_since(b).unwrap_or_else(|e| e.duration())
    }

    #[test]
    fn instants_map_onto_the_wall_clock() {
        let now = Instant::now();
        assert!(apart(wall_time(now), SystemTime::now()) < CLOSE);
    }

    #[test]
    fn a_pair_serves_for_its_life_then_the_clocks_are_read_again() {
        // A pair that says the epoch is now: instants within its life are
        // worked out from it, even earlier ones ...
        let now = Instant::now();
        PAIR.set(Some((now, UNIX_EPOCH + Duration::from_secs(10))));
        let within = now + PAIR_LIFE / 2;
        assert_eq!(
            wall_time(within),
            UNIX_EPOCH + Duration::from_secs(10) + PAIR_LIFE / 2
        );
        let before = now.checked_sub(Duration::from_millis(300)).unwrap();
        assert_eq!(wall_time(before), UNIX_EPOCH + Duration::from_millis(9_700));
        // ... and the first instant past it reads the clocks again.
        let ahead = now + PAIR_LIFE + Duration::from_secs(4);
        let expected = SystemTime::now() + PAIR_LIFE + Duration::from_secs(4);
        assert!(apart(wall_time(ahead), expected) < CLOSE);
        assert!(apart(wall_time(Instant::now()), SystemTime::now()) < CLOSE);
    }

    #[test]
    fn a_pair_converts_both_ways() {
        let base = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        let later = base + Duration::from_millis(1_500);
        assert_eq!(
            from_pair(later, base, wall),
            UNIX_EPOCH + Duration::from_millis(1_001_500)
        );
        let earlier = base.checked_sub(Duration::from_millis(250)).unwrap();
        assert_eq!(
            from_pair(earlier, base, wall),
            UNIX_EPOCH + Duration::from_millis(999_750)
        );
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339_millis(t), "2026-11-18T11:06:40.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn the_cached_second_follows_the_clock() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339_millis(t), "2026-11-18T11:06:40.123Z");
        // Same second, other milliseconds; then the next second, and back.
        let same = t + Duration::from_millis(800);
        assert_eq!(rfc3339_millis(same), "2026-11-18T11:06:40.923Z");
        let next = t + Duration::from_millis(900);
        assert_eq!(rfc3339_millis(next), "2026-11-18T11:06:41.023Z");
        assert_eq!(rfc3339_millis(t), "2026-11-18T11:06:40.123Z");
        let day = t + Duration::from_secs(86_400);
        assert_eq!(rfc3339_millis(day), "2026-11-19T11:06:40.123Z");
    }
}
