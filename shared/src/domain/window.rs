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
