//! Builds a rule-set load's `@rx` patterns on a second core ahead of the compiler.
//!
//! Building the CRS's regexes is half of a load. A helper thread reads the same rule
//! files, lists every static `@rx` pattern and builds them from the last one backwards,
//! while the compiler goes through the files in order and takes what is ready; where
//! the two meet, whichever reaches a pattern first builds it. The compiler stays the
//! only judge of the files: a pattern the helper missed or could not build ahead is
//! built in place, and every error is reported where the compiler meets it.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::macros::Macro;
use crate::operators::pattern::Pattern;
use crate::parser::{self, Dialect};
use crate::rule::operator_parts;
use crate::ruleset::RuleSource;

enum Slot {
    /// Listed, nobody building it yet.
    Todo,
    /// The helper is building it.
    Building,
    Done(Result<Pattern, String>),
}

/// Patterns of one load, built ahead or claimed by the compiler.
#[derive(Default)]
pub(crate) struct Prebuilt {
    slots: Mutex<HashMap<String, Slot>>,
    ready: Condvar,
    stop: AtomicBool,
}

impl Prebuilt {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding the lock leaves the map consistent (inserts and removes only).
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pattern for `param`: built ahead, being built (waits for it), or built here.
    pub(crate) fn pattern(&self, param: &str) -> Result<Pattern, String> {
        let mut slots = self.lock();
        loop {
            match slots.get(param) {
                Some(Slot::Building) => slots = self.ready.wait(slots).unwrap_or_else(|e| e.into_inner()),
                Some(Slot::Done(_)) => match slots.remove(param) {
                    Some(Slot::Done(r)) => return r,
                    _ => unreachable!("matched Done under the same lock"),
                },
                // Unlisted, or not started: the helper must not start it now.
                Some(Slot::Todo) | None => {
                    slots.remove(param);
                    drop(slots);
                    return Pattern::new(param);
                }
            }
        }
    }

    /// Tells the helper to stop after the pattern it is building.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The helper's work: `order` from the end.
    fn build_ahead(&self, order: &[String]) {
        for p in order.iter().rev() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            match self.lock().get_mut(p) {
                Some(s @ Slot::Todo) => *s = Slot::Building,
                _ => continue,
            }
            // A panic here would panic the compiler too: leave the pattern to it.
            let built = catch_unwind(AssertUnwindSafe(|| Pattern::new(p)));
            let mut slots = self.lock();
            match built {
                Ok(r) => slots.insert(p.clone(), Slot::Done(r)),
                Err(_) => slots.remove(p),
            };
            drop(slots);
            self.ready.notify_all();
        }
    }
}

/// Runs `compile` with patterns built ahead on a second thread when the machine has more
/// than one core; the thread has ended when this returns.
pub(crate) fn with_prebuilt<R>(sources: &[RuleSource], compile: impl FnOnce(Option<&Prebuilt>) -> R) -> R {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return compile(None);
    }
    let pool = Prebuilt::default();
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new().spawn_scoped(s, || {
            let order = static_patterns(sources);
            {
                let mut slots = pool.lock();
                for p in &order {
                    slots.entry(p.clone()).or_insert(Slot::Todo);
                }
            }
            pool.build_ahead(&order);
        });
        // Stops the helper however `compile` ends, a panic included (the scope then joins it).
        struct StopOnDrop<'a>(&'a Prebuilt);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let _stop = StopOnDrop(&pool);
        // No thread (resource limits): everything is built in place.
        compile(helper.is_ok().then_some(&pool))
    })
}

/// The static `@rx` parameters of `sources` (Includes followed), first occurrence order.
fn static_patterns(sources: &[RuleSource]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut dialect = Dialect::default();
    for src in sources {
        match src {
            RuleSource::File(p) => scan_file(p, 0, &mut dialect, &mut seen, &mut out),
            RuleSource::Inline { text, origin, line } => {
                let origin: Arc<Path> = Arc::from(origin.as_path());
                let base = origin.parent().map(Path::to_path_buf).unwrap_or_default();
                scan_text(text, &origin, *line, &base, 0, &mut dialect, &mut seen, &mut out);
            }
        }
    }
    out
}

fn scan_file(path: &Path, depth: usize, d: &mut Dialect, seen: &mut HashSet<String>, out: &mut Vec<String>) {
    let Ok(bytes) = std::fs::read(path) else { return };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    scan_text(&String::from_utf8_lossy(&bytes), &Arc::from(path), 1, &base, depth, d, seen, out);
}

#[allow(clippy::too_many_arguments)]
fn scan_text(
    text: &str,
    file: &Arc<Path>,
    line: usize,
    base: &Path,
    depth: usize,
    dialect: &mut Dialect,
    seen: &mut HashSet<String>,
    out: &mut Vec<String>,
) {
    // The compiler's nesting bound (it reports deeper ones).
    if depth >= crate::compile::MAX_INCLUDE_DEPTH {
        return;
    }
    let Ok(ds) = parser::parse_dialect(text, file, line, dialect) else { return };
    for d in &ds {
        if d.name.eq_ignore_ascii_case("include") {
            let [pat] = d.args.as_slice() else { continue };
            let paths = crate::inputs::include_paths(pat, base, crate::inputs::expand).unwrap_or_default();
            for p in paths {
                scan_file(&p, depth + 1, dialect, seen, out);
            }
        } else if d.name.eq_ignore_ascii_case("secrule") {
            let Some(spec) = d.args.get(1) else { continue };
            let Some((_, name, param)) = operator_parts(spec) else { continue };
            if name.eq_ignore_ascii_case("rx")
                && !param.is_empty()
                && Macro::parse(param).is_literal()
                && seen.insert(param.to_string())
            {
                out.push(param.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn inline(text: &str) -> RuleSource {
        RuleSource::Inline { text: text.into(), origin: PathBuf::from("/nonexistent/t.conf"), line: 1 }
    }

    #[test]
    fn lists_static_rx_patterns_once_in_order() {
        let src = inline(
            "SecRule ARGS \"@rx a+b\" \"id:1\"\n\
             SecRule ARGS \"!@rx c\" \"id:2\"\n\
             SecRule ARGS \"d(e)\" \"id:3\"\n\
             SecRule ARGS \"@rx %{tx.x}\" \"id:4\"\n\
             SecRule ARGS \"@pm a b\" \"id:5\"\n\
             SecRule ARGS \"@rx a+b\" \"id:6\"\n\
             SecRule ARGS \"@RX f\" \"id:7\"\n",
        );
        assert_eq!(static_patterns(&[src]), ["a+b", "c", "d(e)", "f"]);
    }

    #[test]
    fn follows_includes() {
        let dir = std::env::temp_dir().join(format!("ward-prebuild-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.conf"), "SecRule ARGS \"@rx from_a\" \"id:1\"\n").unwrap();
        std::fs::write(dir.join("b.conf"), "SecRule ARGS \"@rx from_b\" \"id:2\"\n").unwrap();
        let main = dir.join("main.conf");
        std::fs::write(&main, "Include *.conf\nSecRule ARGS \"@rx own\" \"id:3\"\n").unwrap();
        // main.conf includes itself through the glob: bounded by the nesting limit.
        let got = static_patterns(&[RuleSource::File(main)]);
        assert_eq!(&got[..2], ["from_a", "from_b"]);
        assert!(got.contains(&"own".to_string()));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn compiler_gets_ready_waits_or_builds_itself() {
        let pool = Prebuilt::default();
        pool.lock().insert("ready".into(), Slot::Done(Ok(Pattern::new("x").unwrap())));
        pool.lock().insert("todo".into(), Slot::Todo);
        // Built ahead: handed over as built (for "x"), and only once.
        assert!(pool.pattern("ready").unwrap().is_match(b"x"));
        assert!(!pool.pattern("ready").unwrap().is_match(b"x"), "the second use builds 'ready' itself");
        // Not started: the compiler claims it, and the helper then skips it.
        assert!(pool.pattern("todo").is_ok());
        assert!(pool.lock().get("todo").is_none());
        pool.build_ahead(&["todo".to_string()]);
        assert!(pool.lock().get("todo").is_none());
        // Errors come back as the compiler would have made them.
        pool.lock().insert("(".into(), Slot::Todo);
        pool.build_ahead(&["(".to_string()]);
        assert_eq!(pool.pattern("(").unwrap_err(), Pattern::new("(").unwrap_err());
        // Being built by the helper: the compiler waits for it.
        pool.lock().insert("slow".into(), Slot::Building);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                pool.lock().insert("slow".into(), Slot::Done(Ok(Pattern::new("y").unwrap())));
                pool.ready.notify_all();
            });
            assert!(pool.pattern("slow").unwrap().is_match(b"y"));
        });
    }

    #[test]
    fn stop_ends_the_helper_early() {
        let pool = Prebuilt::default();
        pool.lock().insert("a".into(), Slot::Todo);
        pool.stop();
        pool.build_ahead(&["a".to_string()]);
        assert!(matches!(pool.lock().get("a"), Some(Slot::Todo)));
    }
}
