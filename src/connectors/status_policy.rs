//! Which non-2xx answers a sink retries and which it dead-letters: the `status` table of
//! a sink, checked when the connector is loaded. The egress classifies each attempt
//! with it (`egress::outcome`).

/// What to do after a non-2xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Retry,
    DeadLetter,
}

/// One entry of a status list: an exact code (`404`) or a class (`"4xx"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    /// The hundreds digit: `4` for `4xx`.
    Class(u16),
}

/// Why a status list entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0} is not a status between 300 and 599 (2xx is always delivered)")]
    Code(u16),
    #[error("{0:?} is not a status class; use \"3xx\", \"4xx\" or \"5xx\"")]
    Class(String),
    #[error("{0} is listed in both retry and dead_letter")]
    Both(String),
}

impl StatusMatch {
    pub fn code(code: u16) -> Result<Self, PolicyError> {
        if (300..=599).contains(&code) {
            Ok(StatusMatch::Code(code))
        } else {
            Err(PolicyError::Code(code))
        }
    }

    /// `"3xx"`, `"4xx"` or `"5xx"` (any case).
    pub fn class(text: &str) -> Result<Self, PolicyError> {
        match text.to_ascii_lowercase().as_str() {
            "3xx" => Ok(StatusMatch::Class(3)),
            "4xx" => Ok(StatusMatch::Class(4)),
            "5xx" => Ok(StatusMatch::Class(5)),
            _ => Err(PolicyError::Class(text.to_owned())),
        }
    }

    fn exact(&self, code: u16) -> bool {
        *self == StatusMatch::Code(code)
    }

    fn in_class(&self, code: u16) -> bool {
        *self == StatusMatch::Class(code / 100)
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "\"{c}xx\""),
        }
    }
}

/// Which non-2xx statuses a sink retries and which it dead-letters. An exact code wins
/// over a class, so `retry = [404]` with `dead_letter = ["4xx"]` retries only 404. A
/// status in neither list is dead-lettered: a destination that answers something
/// unexpected is not hammered with retries.
///
/// The default retries what a destination says will pass later (408, 425, 429, 5xx) and
/// what an operator fixes without touching the records: 401 and 403 (a rotated or
/// revoked token) and 404 (a wrong or not yet deployed URL). Dead-lettering those would
/// empty the whole stream into the DLQ at line rate; retried, they open the circuit
/// breaker and the sink waits until the fix. Every other 4xx (400, 410, 413, 422, …) and
/// 3xx (redirects are not followed) is about the record itself and is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPolicy {
    retry: Vec<StatusMatch>,
    dead_letter: Vec<StatusMatch>,
}

/// `retry = [401, 403, 404, 408, 425, 429, "5xx"]`.
pub const DEFAULT_RETRY: [StatusMatch; 7] = [
    StatusMatch::Code(401),
    StatusMatch::Code(403),
    StatusMatch::Code(404),
    StatusMatch::Code(408),
    StatusMatch::Code(425),
    StatusMatch::Code(429),
    StatusMatch::Class(5),
];

/// `dead_letter = ["3xx", "4xx"]`.
pub const DEFAULT_DEAD_LETTER: [StatusMatch; 2] = [StatusMatch::Class(3), StatusMatch::Class(4)];

impl Default for StatusPolicy {
    fn default() -> Self {
        StatusPolicy {
            retry: DEFAULT_RETRY.to_vec(),
            dead_letter: DEFAULT_DEAD_LETTER.to_vec(),
        }
    }
}

impl StatusPolicy {
    /// A policy from the configured lists; `None` keeps a list's default. An entry may
    /// not be in both lists, except that a list left at its default gives way to the
    /// one that was set (`retry = ["4xx"]` alone retries every 4xx).
    pub fn from_lists(
        retry: Option<Vec<StatusMatch>>,
        dead_letter: Option<Vec<StatusMatch>>,
    ) -> Result<Self, PolicyError> {
        let without = |default: &[StatusMatch], set: &[StatusMatch]| -> Vec<StatusMatch> {
            default
                .iter()
                .filter(|m| !set.contains(m))
                .copied()
                .collect()
        };
        let (retry, dead_letter) = match (retry, dead_letter) {
            (Some(r), None) => {
                let d = without(&DEFAULT_DEAD_LETTER, &r);
                (r, d)
            }
            (None, Some(d)) => (without(&DEFAULT_RETRY, &d), d),
            (r, d) => (
                r.unwrap_or_else(|| DEFAULT_RETRY.to_vec()),
                d.unwrap_or_else(|| DEFAULT_DEAD_LETTER.to_vec()),
            ),
        };
        if let Some(both) = retry.iter().find(|m| dead_letter.contains(m)) {
            return Err(PolicyError::Both(both.to_string()));
        }
        Ok(StatusPolicy { retry, dead_letter })
    }

    pub fn retry(&self) -> &[StatusMatch] {
        &self.retry
    }

    pub fn dead_letter(&self) -> &[StatusMatch] {
        &self.dead_letter
    }

    /// What to do after a non-2xx `code`.
    pub fn action(&self, code: u16) -> Action {
        let listed = |pick: fn(&StatusMatch, u16) -> bool| {
            if self.retry.iter().any(|m| pick(m, code)) {
                Some(Action::Retry)
            } else if self.dead_letter.iter().any(|m| pick(m, code)) {
                Some(Action::DeadLetter)
            } else {
                None
            }
        };
        listed(StatusMatch::exact)
            .or_else(|| listed(StatusMatch::in_class))
            .unwrap_or(Action::DeadLetter)
    }
}

/// The policy in config syntax: `retry = [401, "5xx"], dead_letter = ["4xx"]`.
impl std::fmt::Display for StatusPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ms: &[StatusMatch]| {
            ms.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "retry = [{}], dead_letter = [{}]",
            list(&self.retry),
            list(&self.dead_letter)
        )
    }
}
