//! Judges one stage the way go-ftw's `checkResult` does: expected error first,
//! then status, response body, `match_regex`, `expect_ids`, `isolated`,
//! `no_match_regex`, `no_expect_ids`. The first failing check is the reason.

use regex::bytes::Regex;

use super::client::Response;
use super::load::Output;

fn fmt_ids(ids: &[u32]) -> String {
    let inner: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("[{}]", inner.join(", "))
}

fn log_matches(pattern: &str, lines: &[Vec<u8>]) -> Result<bool, String> {
    let re = Regex::new(pattern).map_err(|e| format!("bad regex '{pattern}': {e}"))?;
    Ok(lines.iter().any(|l| re.is_match(l)))
}

/// `None` when the stage passes, else why it failed.
pub fn check(
    expected: &Output,
    response: &Result<Response, String>,
    triggered: &[u32],
    lines: &[Vec<u8>],
) -> Option<String> {
    if expected.expect_error {
        return match response {
            Err(_) => None,
            Ok(r) => Some(format!("expected an error, got status {}", r.status)),
        };
    }
    let response = match response {
        Err(e) => return Some(format!("unexpected error: {e}")),
        Ok(r) => r,
    };
    if !expected.status.is_empty() && !expected.status.contains(&response.status) {
        return Some(if expected.status_list {
            let list: Vec<String> = expected.status.iter().map(u16::to_string).collect();
            format!("status {} not in [{}]", response.status, list.join(", "))
        } else {
            format!("status {} != expected {}", response.status, expected.status[0])
        });
    }
    if let Some(pattern) = &expected.response_contains {
        match Regex::new(pattern) {
            Ok(re) if re.is_match(&response.raw) => {}
            Ok(_) => return Some(format!("response does not match '{pattern}'")),
            Err(e) => return Some(format!("bad regex '{pattern}': {e}")),
        }
    }
    if let Some(pattern) = &expected.match_regex {
        match log_matches(pattern, lines) {
            Ok(true) => {}
            Ok(false) => return Some(format!("log does not match '{pattern}'")),
            Err(e) => return Some(e),
        }
    }
    let missing: Vec<u32> = expected.expect_ids.iter().copied().filter(|id| !triggered.contains(id)).collect();
    if !missing.is_empty() {
        return Some(format!("expected ids not logged: {}", fmt_ids(&missing)));
    }
    if expected.isolated && triggered.len() != 1 {
        return Some(format!("isolated test triggered {}", fmt_ids(triggered)));
    }
    if let Some(pattern) = &expected.no_match_regex {
        match log_matches(pattern, lines) {
            Ok(false) => {}
            Ok(true) => return Some(format!("log matches forbidden '{pattern}'")),
            Err(e) => return Some(e),
        }
    }
    let unexpected: Vec<u32> = expected.no_expect_ids.iter().copied().filter(|id| triggered.contains(id)).collect();
    if !unexpected.is_empty() {
        return Some(format!("unexpected ids logged: {}", fmt_ids(&unexpected)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(status: u16) -> Result<Response, String> {
        Ok(Response { status, raw: Vec::new() })
    }

    #[test]
    fn table() {
        let lines = vec![br#"[id "942100"]"#.to_vec()];
        let out = |f: &dyn Fn(&mut Output)| {
            let mut o = Output::default();
            f(&mut o);
            o
        };
        let cases: Vec<(Output, Result<Response, String>, Vec<u32>, Option<&str>)> = vec![
            (out(&|o| o.expect_ids = vec![942100]), ok(200), vec![942100], None),
            (out(&|o| o.expect_ids = vec![1]), ok(200), vec![942100], Some("expected ids not logged: [1]")),
            (out(&|o| o.no_expect_ids = vec![942100]), ok(200), vec![942100], Some("unexpected ids logged: [942100]")),
            (out(&|o| o.status = vec![200]), ok(400), vec![], Some("status 400 != expected 200")),
            (
                out(&|o| {
                    o.status = vec![403, 400];
                    o.status_list = true
                }),
                ok(200),
                vec![],
                Some("status 200 not in [403, 400]"),
            ),
            (out(&|o| o.match_regex = Some(r#"id "942100""#.into())), ok(200), vec![], None),
            (
                out(&|o| o.no_match_regex = Some(r#"id "942100""#.into())),
                ok(200),
                vec![],
                Some(r#"log matches forbidden 'id "942100"'"#),
            ),
            (out(&|o| o.expect_error = true), Err("timeout".into()), vec![], None),
            (out(&|o| o.expect_error = true), ok(400), vec![], Some("expected an error, got status 400")),
            (Output::default(), Err("x".into()), vec![], Some("unexpected error: x")),
        ];
        for (expected, resp, triggered, want) in cases {
            assert_eq!(check(&expected, &resp, &triggered, &lines).as_deref(), want, "{expected:?}");
        }
    }
}
