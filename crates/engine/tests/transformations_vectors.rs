//! Runs every transformation vector of ModSecurity's `secrules-language-tests`
//! (`../shared/modsec-tests/secrules-language-tests/transformations/*.json`)
//! through the registry and checks the output bytes.
//!
//! Strings are turned into bytes as ModSecurity's unit-test runner
//! (test/unit/unit_test.cc) does: the JSON string is taken as UTF-8 (yajl decodes
//! `\u00e9` to two bytes, so non-ASCII characters stay UTF-8) and ends at its
//! first NUL (the runner builds a `std::string` from yajl's C string, so a JSON
//! `\u0000` cuts the vector short); then `json2bin` replaces the *literal*
//! escapes `\xHH` and then `\uHHHH` (written `\\xHH` in the JSON) with one byte
//! each. Only the NUL cut differs from reading the vectors naively; the vectors
//! it shortens are also run in full and any difference is printed (not failed).
//!
//! `ret` comes from ModSecurity v2's test suite and means "the transformation
//! reported a change"; v3's runner does not check it. It is compared with
//! `output != input` (which is what our `Option` reports) except for the
//! transformations listed in [`RET_ALWAYS_ONE`], whose v2 code reports a change
//! even when the bytes are the same, and the vectors in [`RET_EXCEPTIONS`].

use std::collections::BTreeMap;
use std::path::Path;

use ward_engine::transformations::lookup;

/// Transformations whose v2 `ret` may be 1 for an unchanged value (v2 reported
/// "changed" for any input, or any non-empty input); only "changed implies ret 1"
/// is checked for them.
const RET_ALWAYS_ONE: &[&str] = &["cmdLine", "hexDecode", "hexEncode", "removeComments", "removeCommentsChar"];

/// Single vectors whose `ret` cannot hold, with the reason.
const RET_EXCEPTIONS: &[(&str, usize, &str)] = &[(
    "jsDecode.json",
    4,
    "input equals output (the v2 input `\\8\\9\\666...` was lost in the JSON conversion) but ret is 1",
)];

#[derive(serde::Deserialize)]
struct Vector {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    input: String,
    output: String,
    ret: i64,
}

/// ModSecurity's `json2bin` (test/unit/unit_test.cc), on the UTF-8 bytes of the
/// parsed JSON string.
fn json2bin(s: &str) -> Vec<u8> {
    json2bin_full(s.split('\0').next().unwrap_or_default())
}

/// `json2bin` without the runner's cut at NUL.
fn json2bin_full(s: &str) -> Vec<u8> {
    let mut bytes = s.as_bytes().to_vec();
    // `sscanf` leaves its target untouched when there is no hex digit; the runner
    // then reuses the previous value, which the vectors rely on (`\xga`).
    let mut last = 0u32;
    replace_escapes(&mut bytes, b'x', 2, &mut last);
    replace_escapes(&mut bytes, b'u', 4, &mut last);
    bytes
}

/// Repeatedly finds the first `\<tag>` + `width` alphanumerics and replaces every
/// occurrence of that exact text with the byte its leading hex digits give.
fn replace_escapes(bytes: &mut Vec<u8>, tag: u8, width: usize, last: &mut u32) {
    loop {
        let found = bytes
            .windows(width + 2)
            .position(|w| w[0] == b'\\' && w[1] == tag && w[2..].iter().all(u8::is_ascii_alphanumeric));
        let Some(start) = found else { return };
        let pattern = bytes[start..start + width + 2].to_vec();
        let digits: String = pattern[2..].iter().take_while(|c| c.is_ascii_hexdigit()).map(|&c| c as char).collect();
        if let Ok(v) = u32::from_str_radix(&digits, 16) {
            *last = v;
        }
        let byte = *last as u8;
        // Replace all occurrences, resuming at the inserted byte (as the runner's
        // `replaceAll` does).
        let mut pos = 0;
        while let Some(off) = bytes[pos..].windows(pattern.len()).position(|w| w == pattern.as_slice()) {
            let at = pos + off;
            bytes.splice(at..at + pattern.len(), [byte]);
            pos = at;
        }
    }
}

fn show(b: &[u8]) -> String {
    b.iter().map(|&c| if (0x20..0x7f).contains(&c) { (c as char).to_string() } else { format!("\\x{c:02x}") }).collect()
}

#[test]
fn json2bin_matches_the_runner() {
    assert_eq!(json2bin("a\\x41\\u0042"), b"aAB");
    assert_eq!(json2bin("\\xag\\xga"), b"\n\n");
    assert_eq!(json2bin("\u{e9}"), "\u{e9}".as_bytes());
    assert_eq!(json2bin("\\x"), b"\\x");
    assert_eq!(json2bin("a\0b\\x00"), b"a");
    assert_eq!(json2bin_full("a\0b\\x00"), b"a\0b\0");
}

#[test]
fn all_transformation_vectors() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/modsec-tests/secrules-language-tests/transformations"
    ));
    if !dir.is_dir() {
        println!("SKIPPED: ../shared/modsec-tests/secrules-language-tests/transformations not found");
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read vector dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();

    // name -> (passed, total)
    let mut stats: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read vector file");
        let vectors: Vec<Vector> = serde_json::from_str(&text).expect("parse vector file");
        for (n, v) in vectors.iter().enumerate() {
            assert_eq!(v.kind, "tfn", "{}", file.display());
            // The runner instantiates by class name; SecLang spells it `cmdLine`.
            let name = if v.name == "cmd_line" { "cmdLine" } else { v.name.as_str() };
            let f = lookup(name).unwrap_or_else(|| panic!("no transformation {name}"));
            let input = json2bin(&v.input);
            let want = json2bin(&v.output);
            let result = f(&input);
            let got = result.clone().unwrap_or_else(|| input.clone());
            let entry = stats.entry(name.to_string()).or_default();
            entry.1 += 1;
            let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
            let where_ = format!("{file_name}#{n}");
            if v.input.contains('\0') || v.output.contains('\0') {
                let (input, want) = (json2bin_full(&v.input), json2bin_full(&v.output));
                let got = f(&input).unwrap_or_else(|| input.clone());
                if got != want {
                    notes.push(format!(
                        "{where_} {name} (in full, past the runner's NUL cut): input {:?}\n    got  {:?}\n    want {:?}",
                        show(&input),
                        show(&got),
                        show(&want)
                    ));
                }
            }
            if got != want {
                failures.push(format!(
                    "{where_} {name}: input {:?}\n    got  {:?}\n    want {:?}",
                    show(&input),
                    show(&got),
                    show(&want)
                ));
                continue;
            }
            if result.as_deref() == Some(input.as_slice()) {
                failures.push(format!("{where_} {name}: Some(..) returned for an unchanged value"));
                continue;
            }
            let reported = result.is_some();
            let ret_ok =
                if RET_ALWAYS_ONE.contains(&name) { !reported || v.ret == 1 } else { (v.ret == 1) == reported };
            let excused = RET_EXCEPTIONS.iter().any(|&(f, i, _)| f == file_name && i == n);
            if !ret_ok && !excused {
                failures.push(format!(
                    "{where_} {name}: ret {} but changed={reported} for input {:?}",
                    v.ret,
                    show(&input)
                ));
                continue;
            }
            entry.0 += 1;
        }
    }

    let (mut pass, mut total) = (0, 0);
    for (name, (p, t)) in &stats {
        println!("{name:20} {p:3}/{t:3}");
        pass += p;
        total += t;
    }
    println!("{:20} {pass:3}/{total:3}", "TOTAL");
    for (file, n, why) in RET_EXCEPTIONS {
        println!("ret not checked for {file}#{n}: {why}");
    }
    for note in &notes {
        println!("NOTE {note}");
    }
    assert!(failures.is_empty(), "{} failing vectors:\n{}", failures.len(), failures.join("\n"));
}
