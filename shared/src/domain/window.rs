//! The usage window of a request, and the billing periods (partitions) it touches.

use super::error::DomainError;
use chrono::{Datelike, Months, NaiveDate};

/// A half-open range of usage days `[from, to)`, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageWindow {
    from: NaiveDate,
    to: NaiveDate,
}

/// A billing period (calendar month), the unit AWS delivers and Athena partitions by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BillingPeriod {
    pub year: i32,
    pub month: u32,
}

impl BillingPeriod {
    /// Parses `2024-06`.
    pub fn parse(text: &str) -> Result<BillingPeriod, DomainError> {
        let bad = |reason: &str| DomainError::InvalidWindow {
            what: "billing period",
            given: text.to_string(),
            reason: reason.to_string(),
        };
        let (year, month) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("expected YYYY-MM"))?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad("expected YYYY-MM"));
        }
        let year: i32 = year.parse().map_err(|_| bad("year is not a number"))?;
        let month: u32 = month.parse().map_err(|_| bad("month is not a number"))?;
        if !(1..=12).contains(&month) {
            return Err(bad("month must be 01 to 12"));
        }
        Ok(BillingPeriod { year, month })
    }

    /// The first day of the period.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// The period containing `day`.
    pub fn of(day: NaiveDate) -> BillingPeriod {
        BillingPeriod {
            year: day.year(),
            month: day.month(),
        }
    }

    /// `2024-06`: CUR 2.0 / FOCUS `billing_period` partition value.
    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// Legacy CUR partition values: `year='2024'`, `month='6'` (month **not** zero padded).
    pub fn legacy_partition(self) -> (String, String) {
        (self.year.to_string(), self.month.to_string())
    }
}

impl UsageWindow {
    /// The window `[from, to)`; `to` must be after `from`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<UsageWindow, DomainError> {
        if to <= from {
            return Err(DomainError::InvalidWindow {
                what: "window",
                given: format!("{from}..{to}"),
                reason: "the end must be after the start (the end day is exclusive)".into(),
            });
        }
        Ok(UsageWindow { from, to })
    }

    /// The whole of one billing period.
    pub fn billing_period(period: BillingPeriod) -> UsageWindow {
        let from = period.first_day();
        let to = from
            .checked_add_months(Months::new(1))
            .unwrap_or(NaiveDate::MAX);
        UsageWindow { from, to }
    }

    /// Parses a `YYYY-MM-DD` day for `--from` / `--to`.
    pub fn parse_day(what: &'static str, text: &str) -> Result<NaiveDate, DomainError> {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| DomainError::InvalidWindow {
            what,
            given: text.to_string(),
            reason: format!("expected YYYY-MM-DD ({e})"),
        })
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    /// The exclusive end day.
    pub fn to(&self) -> NaiveDate {
        self.to
    }

    /// Whether `day` lies in the window.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day < self.to
    }

    /// Parses an OpenCost `window` parameter, for the allocation API. CUR data is daily, so every
    /// window is whole UTC days, half-open:
    ///
    /// - `today`, `yesterday`, `week` (Monday to today), `lastweek`, `month` (1st to today), `lastmonth`;
    /// - `7d` = the 7 days ending with today; `48h` = 2 days (hours must be whole days);
    /// - `2024-06-01T00:00:00Z,2024-07-01T00:00:00Z` (RFC 3339, UTC midnights) or
    ///   `1717200000,1719792000` (Unix seconds at UTC midnights).
    ///
    /// `today` is passed in (the caller's clock), so results are reproducible. Errors name the value
    /// and the accepted forms.
    pub fn parse_opencost(text: &str, today: NaiveDate) -> Result<UsageWindow, DomainError> {
        let given = text.trim();
        let bad = |reason: String| DomainError::InvalidWindow {
            what: "window",
            given: given.to_string(),
            reason,
        };
        let day = |n: i64| {
            today
                .checked_add_signed(chrono::Duration::days(n))
                .ok_or_else(|| bad("out of range".into()))
        };
        let week_start = day(-i64::from(today.weekday().num_days_from_monday()))?;
        let month_start = BillingPeriod::of(today).first_day();
        let lower = given.to_ascii_lowercase();
        let (from, to) = match lower.as_str() {
            "today" => (today, day(1)?),
            "yesterday" => (day(-1)?, today),
            "week" => (week_start, day(1)?),
            "lastweek" => (week_start - chrono::Duration::days(7), week_start),
            "month" => (month_start, day(1)?),
            "lastmonth" => {
                let previous = month_start
                    .checked_sub_months(Months::new(1))
                    .ok_or_else(|| bad("out of range".into()))?;
                (previous, month_start)
            }
            _ if lower.contains(',') => {
                let (start, end) = lower.split_once(',').unwrap_or_default();
                (
                    Self::opencost_instant(start.trim()).map_err(&bad)?,
                    Self::opencost_instant(end.trim()).map_err(&bad)?,
                )
            }
            _ => {
                let days = Self::opencost_duration_days(&lower).map_err(&bad)?;
                (day(1 - days)?, day(1)?)
            }
        };
        UsageWindow::new(from, to).map_err(|_| bad("the end must be after the start".into()))
    }

    fn opencost_duration_days(text: &str) -> Result<i64, String> {
        let forms = "expected today, yesterday, week, lastweek, month, lastmonth, Nd, Nh (whole days), or START,END";
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let n: i64 = number.parse().map_err(|_| forms.to_string())?;
        let days = match unit {
            "d" => n,
            "h" if n % 24 == 0 => n / 24,
            "h" => return Err("CUR data is daily: hours must be a multiple of 24".into()),
            _ => return Err(forms.into()),
        };
        if !(1..=3660).contains(&days) {
            return Err("the duration must be 1 to 3660 days".into());
        }
        Ok(days)
    }

    fn opencost_instant(text: &str) -> Result<NaiveDate, String> {
        let instant = if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
            let seconds: i64 = text
                .parse()
                .map_err(|_| format!("`{text}` is not a Unix time"))?;
            chrono::DateTime::from_timestamp(seconds, 0)
                .ok_or_else(|| format!("`{text}` is out of range"))?
        } else {
            chrono::DateTime::parse_from_rfc3339(&text.to_uppercase())
                .map_err(|e| format!("`{text}` is not RFC 3339 ({e})"))?
                .with_timezone(&chrono::Utc)
        };
        if instant.time() != chrono::NaiveTime::MIN {
            return Err(format!("`{text}` is not a UTC midnight: CUR data is daily"));
        }
        Ok(instant.date_naive())
    }

    /// Every billing period the window touches, oldest first: the partitions a query must read.
    pub fn billing_periods(&self) -> Vec<BillingPeriod> {
        let mut out = Vec::new();
        let last = BillingPeriod::of(self.to.pred_opt().unwrap_or(self.to));
        let mut current = BillingPeriod::of(self.from);
        while current <= last {
            out.push(current);
            let next = current.first_day().checked_add_months(Months::new(1));
            match next {
                Some(day) => current = BillingPeriod::of(day),
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        UsageWindow::parse_day("day", text).expect("valid test day")
    }

    #[test]
    fn billing_period_window_is_the_whole_month() {
        let window = UsageWindow::billing_period(BillingPeriod::parse("2024-02").expect("valid"));
        assert_eq!(
            (window.from(), window.to()),
            (day("2024-02-01"), day("2024-03-01"))
        );
        assert_eq!(
            window.billing_periods(),
            vec![BillingPeriod {
                year: 2024,
                month: 2
            }]
        );
    }

    #[test]
    fn window_across_a_year_end_touches_both_periods() {
        let window = UsageWindow::new(day("2023-12-20"), day("2024-01-05")).expect("valid");
        let labels: Vec<String> = window
            .billing_periods()
            .into_iter()
            .map(BillingPeriod::label)
            .collect();
        assert_eq!(labels, vec!["2023-12", "2024-01"]);
    }

    #[test]
    fn end_on_a_month_boundary_does_not_touch_the_next_period() {
        let window = UsageWindow::new(day("2024-06-01"), day("2024-07-01")).expect("valid");
        assert_eq!(window.billing_periods().len(), 1);
    }

    #[test]
    fn legacy_month_is_not_zero_padded() {
        assert_eq!(
            BillingPeriod::parse("2024-06")
                .expect("valid")
                .legacy_partition(),
            ("2024".into(), "6".into())
        );
    }

    #[test]
    fn opencost_keywords_are_whole_utc_days() {
        let today = day("2024-06-12"); // a Wednesday
        let window = |text: &str| {
            let w =
                UsageWindow::parse_opencost(text, today).unwrap_or_else(|e| panic!("{text}: {e}"));
            (w.from().to_string(), w.to().to_string())
        };
        assert_eq!(window("today"), ("2024-06-12".into(), "2024-06-13".into()));
        assert_eq!(
            window("yesterday"),
            ("2024-06-11".into(), "2024-06-12".into())
        );
        assert_eq!(window("week"), ("2024-06-10".into(), "2024-06-13".into()));
        assert_eq!(
            window("lastweek"),
            ("2024-06-03".into(), "2024-06-10".into())
        );
        assert_eq!(window("month"), ("2024-06-01".into(), "2024-06-13".into()));
        assert_eq!(
            window("LastMonth"),
            ("2024-05-01".into(), "2024-06-01".into())
        );
        assert_eq!(window("7d"), ("2024-06-06".into(), "2024-06-13".into()));
        assert_eq!(window("48h"), ("2024-06-11".into(), "2024-06-13".into()));
        assert_eq!(
            window("2024-06-01T00:00:00Z,2024-07-01T00:00:00Z"),
            ("2024-06-01".into(), "2024-07-01".into())
        );
        assert_eq!(
            window("1717200000,1719792000"),
            ("2024-06-01".into(), "2024-07-01".into())
        );
    }

    #[test]
    fn opencost_windows_that_are_not_whole_days_are_refused_with_the_reason() {
        let today = day("2024-06-12");
        for (text, needle) in [
            ("36h", "multiple of 24"),
            (
                "2024-06-01T12:00:00Z,2024-07-01T00:00:00Z",
                "not a UTC midnight",
            ),
            (
                "2024-07-01T00:00:00Z,2024-06-01T00:00:00Z",
                "end must be after the start",
            ),
            ("fortnight", "expected today, yesterday"),
            ("0d", "1 to 3660 days"),
            ("junk,1719792000", "not RFC 3339"),
        ] {
            let err = UsageWindow::parse_opencost(text, today)
                .expect_err(text)
                .to_string();
            assert!(err.contains(needle) && err.contains(text), "{text}: {err}");
        }
    }

    #[test]
    fn bad_periods_and_windows_are_explained() {
        assert!(BillingPeriod::parse("2024-13")
            .expect_err("month 13")
            .to_string()
            .contains("01 to 12"));
        assert!(BillingPeriod::parse("June").is_err());
        assert!(UsageWindow::new(day("2024-06-02"), day("2024-06-01")).is_err());
        assert!(UsageWindow::parse_day("--from", "2024/06/01").is_err());
    }
}
