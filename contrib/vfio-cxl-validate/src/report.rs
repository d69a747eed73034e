// SPDX-License-Identifier: GPL-2.0-or-later

//! Check results: one line each, "PASS name: numbers seen", printed as
//! they come so that a hang shows where.

use std::fmt;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable to this host (another posting, another transport)
    /// or not run (needs `--yes`, or what it builds on failed).
    NotApplicable,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::NotApplicable => "N/A ",
        })
    }
}

/// Prints a line on stdout at once; a reader that went away (`| head`)
/// ends nothing: the checks still run to their end and clean up.
pub fn say(line: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
}

impl fmt::Display for CheckLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:<26} {}", self.outcome, self.name, self.detail)
    }
}

/// What a check returns: `Ok` passes with the numbers seen, `Err` fails
/// with them, [`Verdict::NotApplicable`] says why it does not apply.
pub enum Verdict {
    Pass(String),
    Fail(String),
    NotApplicable(String),
}

/// Shorthand: pass when `ok`, else fail, with the same numbers.
#[must_use]
pub fn verdict(ok: bool, detail: String) -> Verdict {
    if ok {
        Verdict::Pass(detail)
    } else {
        Verdict::Fail(detail)
    }
}

impl From<Result<String, String>> for Verdict {
    fn from(r: Result<String, String>) -> Self {
        match r {
            Ok(s) => Self::Pass(s),
            Err(s) => Self::Fail(s),
        }
    }
}

/// The lines of one run, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<CheckLine>,
    /// Print each line as it is recorded.
    pub echo: bool,
}

impl Report {
    #[must_use]
    pub const fn new(echo: bool) -> Self {
        Self {
            lines: Vec::new(),
            echo,
        }
    }

    /// Records a verdict; returns whether it passed.
    pub fn record(&mut self, name: &'static str, v: Verdict) -> bool {
        let (outcome, detail) = match v {
            Verdict::Pass(d) => (Outcome::Pass, d),
            Verdict::Fail(d) => (Outcome::Fail, d),
            Verdict::NotApplicable(d) => (Outcome::NotApplicable, d),
        };
        let line = CheckLine {
            name,
            outcome,
            detail,
        };
        if self.echo {
            say(format_args!("{line}"));
        }
        self.lines.push(line);
        outcome == Outcome::Pass
    }

    /// The outcome of the check `name`, if it ran.
    #[must_use]
    pub fn outcome(&self, name: &str) -> Option<Outcome> {
        self.lines
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.outcome)
    }

    #[must_use]
    pub fn count(&self, o: Outcome) -> usize {
        self.lines.iter().filter(|l| l.outcome == o).count()
    }

    #[must_use]
    pub fn failed(&self) -> bool {
        self.count(Outcome::Fail) > 0
    }

    /// "N pass, N fail, N n/a".
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "{} pass, {} fail, {} n/a",
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::NotApplicable)
        )
    }
}
